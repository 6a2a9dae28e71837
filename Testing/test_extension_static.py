"""Static checks of the Slicer extension's packaging, run without Slicer.

They catch what would otherwise show only in a Slicer build or in the Extensions Index review: files missing from
the module's CMakeLists.txt, widget names the module uses but the .ui lacks, descriptors that disagree, a
catalog entry that does not follow the schema, a wrong icon, and a module file that imports TensorFlow on load.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "DENExtractor"
MODULE_FILE = MODULE_DIR / "DENExtractor.py"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "DENExtractor.ui"
EXTENSION_CMAKE = ROOT / "CMakeLists.txt"
S4EXT = ROOT / "DENExtractor.s4ext"
CATALOG_ENTRY = ROOT / "DENExtractor.json"

SCHEMA_URL = (
    "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json"
)
"""The catalog entry schema the Extensions Index uses since Slicer 5.8."""

SCHEMA_REQUIRED = ("$schema", "category", "scm_url")
"""The "required" list of schema v1.0.2."""

SCHEMA_PROPERTIES = {
    "$schema": str,
    "category": str,
    "scm_url": str,
    "scm_revision": str,
    "scm_type": str,
    "build_dependencies": list,
    "dicom_support_rule": str,
    "build_subdirectory": str,
    "enabled": bool,
    "tier": int,
}
"""Every property of schema v1.0.2 with its JSON type; the schema allows no other ("additionalProperties": false)."""

SCHEMA_SCM_TYPES = ("git", "local")
"""The "enum" of scm_type in schema v1.0.2."""

MODULE_CLASSES = ("DENExtractor", "DENExtractorWidget", "DENExtractorLogic", "DENExtractorTest")
"""The class names Slicer's scripted module loader looks up in DENExtractor.py."""

FORBIDDEN_IMPORTS = ("tensorflow", "keras")

MODULE_LOAD_IMPORTS = {
    *sys.stdlib_module_names,  # the standard library
    "numpy", "qt", "vtk", "slicer",  # bundled with Slicer
    "DENExtractorLib", "DENExtractorSlicer",  # beside the module file (tested with nothing else installed)
}
"""What DENExtractor.py may import when Slicer loads it."""


# --- helpers -------------------------------------------------------------------------------------------------


def cmake_text(path: Path) -> str:
    """Return a CMake file's text without comments (no value in these files contains '#')."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())


def cmake_lists(path: Path) -> dict[str, list[str]]:
    """Return every ``set(NAME item ...)`` of a CMake file as NAME -> items."""
    return {name: body.split() for name, body in re.findall(r"\bset\(\s*(\w+)\s+([^)]*)\)", cmake_text(path))}


def cmake_strings(path: Path) -> dict[str, str]:
    """Return every ``set(NAME "value")`` of a CMake file as NAME -> value."""
    return dict(re.findall(r'\bset\(\s*(\w+)\s+"([^"]*)"\s*\)', cmake_text(path)))


def module_cmake_files() -> list[str]:
    """Return the scripts and resources the module's CMakeLists.txt lists, relative to DENExtractor/."""
    lists = cmake_lists(MODULE_CMAKE)
    module_name = lists["MODULE_NAME"][0]
    items = lists["MODULE_PYTHON_SCRIPTS"] + lists["MODULE_PYTHON_RESOURCES"]
    return [item.replace("${MODULE_NAME}", module_name) for item in items]


def module_tree_files() -> list[str]:
    """Return every file under DENExtractor/ that the build must install.

    Left out: CMake files, the build artefacts .gitignore names (byte code, pip's egg-info folders), and the
    build-time tests under Testing/ (registered with CTest by Testing/Python/CMakeLists.txt, not installed).
    """
    return sorted(
        path.relative_to(MODULE_DIR).as_posix()
        for path in MODULE_DIR.rglob("*")
        if path.is_file()
        and path.name != "CMakeLists.txt"
        and path.relative_to(MODULE_DIR).parts[0] != "Testing"
        and path.suffix != ".pyc"
        and not any(part == "__pycache__" or part.endswith(".egg-info") for part in path.parts)
    )


def s4ext() -> dict[str, str]:
    """Return the .s4ext descriptor as keyword -> value (the rest of the line)."""
    entries = {}
    for raw in S4EXT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, value = line.partition(" ")
            entries[keyword] = value.strip()
    return entries


def catalog_entry() -> dict:
    """Return the JSON catalog entry."""
    return json.loads(CATALOG_ENTRY.read_text(encoding="utf-8"))


def module_tree() -> ast.Module:
    """Return the parsed module file."""
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"), filename=str(MODULE_FILE))


def module_class(name: str) -> ast.ClassDef:
    """Return a top-level class of the module file."""
    for node in module_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"DENExtractor.py has no class {name}")


def ui_root() -> ElementTree.Element:
    """Return the root element of the module's .ui file."""
    return ElementTree.parse(UI_FILE).getroot()


def imported_modules(nodes: list[ast.stmt]) -> list[str]:
    """Return the top-level package names imported by the given statements (not descending into them)."""
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module.split(".")[0])
    return names


# --- the module's file list ----------------------------------------------------------------------------------


def test_every_module_file_is_listed_in_cmake():
    unlisted = sorted(set(module_tree_files()) - set(module_cmake_files()))
    assert not unlisted, f"add these files to DENExtractor/CMakeLists.txt (SCRIPTS or RESOURCES): {unlisted}"


def test_every_file_cmake_lists_exists():
    missing = [item for item in module_cmake_files() if not (MODULE_DIR / item).is_file()]
    assert not missing, f"DENExtractor/CMakeLists.txt lists files that do not exist: {missing}"


def test_cmake_lists_python_as_scripts_and_the_rest_as_resources():
    lists = cmake_lists(MODULE_CMAKE)
    assert all(item.endswith(".py") for item in lists["MODULE_PYTHON_SCRIPTS"])
    assert not any(item.endswith(".py") for item in lists["MODULE_PYTHON_RESOURCES"])
    assert len(set(module_cmake_files())) == len(module_cmake_files()), "a file is listed twice"


def test_module_cmake_builds_the_scripted_module():
    text = cmake_text(MODULE_CMAKE)
    assert cmake_lists(MODULE_CMAKE)["MODULE_NAME"] == ["DENExtractor"]
    assert re.search(r"slicerMacroBuildScriptedModule\(.*WITH_GENERIC_TESTS", text, re.S)
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert (MODULE_DIR / "Testing" / "CMakeLists.txt").is_file()
    assert (MODULE_DIR / "Testing" / "Python" / "CMakeLists.txt").is_file()


def test_every_build_time_test_is_registered_with_ctest():
    folder = MODULE_DIR / "Testing" / "Python"
    text = cmake_text(folder / "CMakeLists.txt")
    scripts = sorted(path.name for path in folder.glob("*.py"))
    assert scripts, "no build-time test: the Extensions Index factory would run only the self-test"
    for script in scripts:
        assert f"slicer_add_python_unittest(SCRIPT {script})" in text, f"{script} is not registered with CTest"


def test_the_self_test_reports_skips_and_never_returns_early():
    """A test that cannot run in testing mode raises SkipTest (reported as skipped), it does not return."""
    tests = module_class("DENExtractorTest")
    methods = {node.name: node for node in tests.body if isinstance(node, ast.FunctionDef)}
    for name, method in methods.items():
        if name.startswith("test_"):
            assert not any(isinstance(node, ast.Return) for node in ast.walk(method)), f"{name} returns early"
    assert "runTest" in methods and "SkipTest" in ast.unparse(methods["runTest"])


# --- the .ui file --------------------------------------------------------------------------------------------


def test_ui_is_well_formed_designer_xml():
    root = ui_root()
    assert root.tag == "ui"
    assert root.findtext("class") == "DENExtractor"
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == "DENExtractor"


def test_ui_custom_widgets_are_declared():
    root = ui_root()
    declared = {custom.findtext("class") for custom in root.iter("customwidget")}
    used = {widget.get("class") for widget in root.iter("widget")}
    undeclared = sorted(name for name in used if not name.startswith("Q") and name not in declared)
    assert not undeclared, f"declare these classes under <customwidgets> in the .ui: {undeclared}"


def test_ui_object_names_are_unique():
    names = [element.get("name") for element in ui_root().iter() if element.tag in ("widget", "layout", "spacer")]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"duplicate objectNames in the .ui: {duplicates}"


def test_every_ui_widget_the_module_uses_exists():
    used = {
        node.attr
        for node in ast.walk(module_tree())
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    defined = {widget.get("name") for widget in ui_root().iter("widget")}
    assert used, "the module uses no self.ui widgets: is the check looking at the right file?"
    missing = sorted(used - defined)
    assert not missing, f"DENExtractor.py uses self.ui.<name> for widgets the .ui lacks: {missing}"


def test_ui_parameter_names_are_parameter_node_fields():
    fields = {
        statement.target.id
        for statement in module_class("DENExtractorParameterNode").body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    }
    bound = {
        prop.findtext("string")
        for prop in ui_root().iter("property")
        if prop.get("name") == "SlicerParameterName"
    }
    assert bound, "no widget of the .ui has a SlicerParameterName property"
    unknown = sorted(bound - fields)
    assert not unknown, f"SlicerParameterName values that are not DENExtractorParameterNode fields: {unknown}"


# --- descriptors: .s4ext, JSON catalog entry, top-level CMakeLists.txt -----------------------------------------


def test_s4ext_and_catalog_entry_agree():
    classic, entry = s4ext(), catalog_entry()
    assert entry.get("scm_type", "git") == classic["scm"]
    assert entry["scm_url"] == classic["scmurl"]
    assert entry.get("scm_revision") == classic["scmrevision"]
    assert entry["category"] == classic["category"]
    assert entry.get("build_subdirectory", ".") == classic["build_subdirectory"]
    classic_depends = [] if classic["depends"] == "NA" else classic["depends"].split()
    assert entry.get("build_dependencies", []) == classic_depends
    assert entry.get("enabled", True) == (classic["enabled"] == "1")
    assert entry.get("tier", 1) == int(classic.get("tier", "1"))


def test_s4ext_and_extension_cmake_agree():
    classic, cmake = s4ext(), cmake_strings(EXTENSION_CMAKE)
    assert classic["homepage"] == cmake["EXTENSION_HOMEPAGE"]
    assert classic["category"] == cmake["EXTENSION_CATEGORY"]
    assert classic["contributors"] == cmake["EXTENSION_CONTRIBUTORS"]
    assert classic["description"] == cmake["EXTENSION_DESCRIPTION"]
    assert classic["iconurl"] == cmake["EXTENSION_ICONURL"]
    assert classic["screenshoturls"] == cmake["EXTENSION_SCREENSHOTURLS"]
    assert classic["depends"] == cmake["EXTENSION_DEPENDS"]


def test_urls_point_into_the_repository_at_its_revision():
    classic = s4ext()
    repository = classic["scmurl"].removesuffix(".git")
    assert classic["homepage"] == repository
    raw_repository = repository.replace("https://github.com/", "https://raw.githubusercontent.com/")
    raw_prefix = f"{raw_repository}/{classic['scmrevision']}/"
    for url in [classic["iconurl"], *classic["screenshoturls"].split()]:
        assert url.startswith(raw_prefix), f"{url} is not a raw URL of {repository} at {classic['scmrevision']}"
        assert (ROOT / url.removeprefix(raw_prefix)).is_file(), f"{url} names a file this repository lacks"


def test_catalog_entry_follows_schema_v1_0_2():
    entry = catalog_entry()
    assert entry["$schema"].split("#")[0] == SCHEMA_URL
    missing = [key for key in SCHEMA_REQUIRED if key not in entry]
    assert not missing, f"required by the schema: {missing}"
    extra = sorted(set(entry) - set(SCHEMA_PROPERTIES))
    assert not extra, f"the schema allows no other properties: {extra}"
    for key, value in entry.items():
        expected = SCHEMA_PROPERTIES[key]
        is_bool_for_int = expected is int and isinstance(value, bool)
        assert isinstance(value, expected) and not is_bool_for_int, f"{key} must be a {expected.__name__}"
    assert entry.get("scm_type", "git") in SCHEMA_SCM_TYPES
    assert all(isinstance(item, str) for item in entry.get("build_dependencies", []))
    assert 1 <= entry.get("tier", 1) <= 5
    assert re.match(r"(https|git)://", entry["scm_url"]), "the Extensions Index accepts https:// or git:// scm URLs"


def test_extension_cmake_matches_the_index_checks():
    text = EXTENSION_CMAKE.read_text(encoding="utf-8")
    project = re.search(r"project\s*\(\s*([^\s)]+)", text, re.I)
    assert project and project.group(1) == CATALOG_ENTRY.stem, "project() must be named like the catalog entry file"
    # The Extensions Index reads these two settings with these patterns (one line each, quoted URLs).
    assert re.search(r'set\s*\(EXTENSION_ICONURL\s*"(http[^"]+)"[ ]*\)', text), 'write set(EXTENSION_ICONURL "http...")'
    assert re.search(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"(http[^"]+)"\)', text), (
        'write set(EXTENSION_SCREENSHOTURLS "http... http...") with no space before ")"'
    )
    for include in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(DENExtractor)",
                    "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert include in text, f"the extension CMakeLists.txt lacks {include}"


def test_module_category_is_the_extension_category():
    categories = [
        node.value
        for statement in ast.walk(module_class("DENExtractor"))
        if isinstance(statement, ast.Assign)
        and any(isinstance(target, ast.Attribute) and target.attr == "categories" for target in statement.targets)
        for node in ast.walk(statement.value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != "qSlicerAbstractCoreModule"
    ]
    assert categories == [cmake_strings(EXTENSION_CMAKE)["EXTENSION_CATEGORY"]]


# --- images --------------------------------------------------------------------------------------------------


MODULE_ICON = MODULE_DIR / "Resources" / "Icons" / "DENExtractor.png"
EXTENSION_ICON = ROOT / "Resources" / "Icons" / "DENExtractor.png"


@pytest.mark.parametrize("icon", [MODULE_ICON, EXTENSION_ICON], ids=["module icon", "extension icon"])
def test_icon_is_a_128_pixel_png(icon):
    with Image.open(icon) as image:
        assert image.format == "PNG"
        assert image.size == (128, 128)


def test_module_and_extension_icons_are_the_same_picture():
    with Image.open(MODULE_ICON) as module_icon, Image.open(EXTENSION_ICON) as extension_icon:
        assert module_icon.convert("RGBA").tobytes() == extension_icon.convert("RGBA").tobytes()


def test_screenshot_is_a_png():
    with Image.open(ROOT / "Resources" / "Screenshots" / "heatmap.png") as image:
        assert image.format == "PNG"
        assert image.size[0] >= 640 and image.size[1] >= 360  # large enough for the Extensions catalogue


# --- the module file -----------------------------------------------------------------------------------------


def test_module_file_never_imports_tensorflow_or_keras():
    everywhere = imported_modules(list(ast.walk(module_tree())))
    forbidden = sorted(set(everywhere) & set(FORBIDDEN_IMPORTS))
    assert not forbidden, f"DENExtractor.py must not import {forbidden}: they are installed on first use"


def test_module_file_imports_at_load_only_what_slicer_bundles_and_our_packages():
    top_level = set(imported_modules(module_tree().body))
    unexpected = sorted(top_level - MODULE_LOAD_IMPORTS)
    assert not unexpected, f"DENExtractor.py imports {unexpected} at load: Slicer may not have them"
    assert {"DENExtractorSlicer", "DENExtractorLib"} <= top_level


def test_module_classes_are_named_for_slicers_loader():
    defined = {node.name for node in module_tree().body if isinstance(node, ast.ClassDef)}
    missing = [name for name in MODULE_CLASSES if name not in defined]
    assert not missing, f"DENExtractor.py lacks the classes Slicer looks up: {missing}"
    bases = {
        name: {base.id for base in module_class(name).bases if isinstance(base, ast.Name)}
        for name in MODULE_CLASSES
    }
    assert "ScriptedLoadableModule" in bases["DENExtractor"]
    assert "ScriptedLoadableModuleWidget" in bases["DENExtractorWidget"]
    assert "ScriptedLoadableModuleLogic" in bases["DENExtractorLogic"]
    assert "ScriptedLoadableModuleTest" in bases["DENExtractorTest"]


def test_module_help_links_to_the_extension_homepage():
    help_text = next(
        ast.literal_eval(statement.value.args[0])
        for statement in ast.walk(module_class("DENExtractor"))
        if isinstance(statement, ast.Assign)
        and any(isinstance(target, ast.Attribute) and target.attr == "helpText" for target in statement.targets)
    )
    assert f'<a href="{cmake_strings(EXTENSION_CMAKE)["EXTENSION_HOMEPAGE"]}">' in help_text
    assert "from DENExtractorSlicer import process" in help_text


def test_no_deprecated_color_node_calls():
    """NamesInitialisedOn() and friends log an error on every call since Slicer 5.10."""
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in MODULE_DIR.rglob("*.py")
        if re.search(r"NamesInitialised", path.read_text(encoding="utf-8"))
    ]
    assert not offenders


@pytest.mark.parametrize("path", sorted((MODULE_DIR / "DENExtractorLib").rglob("*.py")),
                         ids=lambda path: str(path.relative_to(MODULE_DIR / "DENExtractorLib")))
def test_the_core_imports_nothing_of_slicer(path):
    imported = set(imported_modules(list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))))
    assert not imported & {"slicer", "vtk", "vtkmodules", "qt", "ctk", "DENExtractorSlicer"}


def test_the_wheel_holds_only_the_core():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (packages,) = re.findall(r"^packages = \[(.*?)\]$", pyproject, re.M | re.S)
    names = re.findall(r'"([\w.]+)"', packages)
    assert "DENExtractorLib" in names and all(name.split(".")[0] == "DENExtractorLib" for name in names)


def test_readme_self_test_commands_exit_when_done():
    """Without --testing a failing self-test leaves a windowless Slicer running: every documented command has it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages).replace("\\\n", " ")
    commands = [line for line in text.splitlines() if line.lstrip().startswith("Slicer ") and "runUnitTest" in line]
    assert commands
    for command in commands:
        assert " --testing " in command, command
