"""The layers of the tree hold: no import cycle, and no arrow running back up (product code and tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "DENExtractor" / "DENExtractorLib"
PACKAGE = "DENExtractorLib"

LAYERS = (
    ("_version", "errors", "hashing", "dataframes", "volume"),
    ("readers",),
    ("network",),
    ("settings", "params"),
    ("extraction",),
    ("outputs",),
    ("demo", "cohorts"),
    ("robustness",),
    ("training",),
    ("cli",),
    ("",),
)
"""Every top-level module and subpackage of the package, bottom layer first ("" is the package's ``__init__``):
one case's volume is read (readers), the network built (network), the settings checked (settings), the volume
turned into features (extraction), the files written (outputs), then cohorts, robustness, training and the CLI.
A module imports only from its own layer or those below it."""

LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    """The dotted module name of a file of the package (a package's ``__init__`` is the package)."""
    parts = [PACKAGE, *path.relative_to(LIB).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The package's modules that a file imports, at the top or inside functions, as dotted names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == PACKAGE:
                target = node.module
            else:
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import trainer`
    return found


def product_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (only names that are modules)."""
    files = {module_name(path): path for path in LIB.rglob("*.py")}
    return {name: {target for target in imported_modules(path) if target in files and target != name}
            for name, path in files.items()}


def layer(module: str) -> str:
    """The layer of a module: its first subpackage, or the module itself for top-level modules."""
    return module.split(".")[1] if "." in module else ""


def test_the_product_import_graph_has_no_cycle():
    graph = product_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in visiting:
            cycle = [*visiting[visiting.index(module):], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            if target != module.rpartition(".")[0]:  # a submodule's own package __init__ is not a back edge
                visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_every_top_level_module_has_a_named_layer():
    top_level = {layer(module) for module in product_graph()}
    assert top_level == set(LAYER_OF), "place each new top-level module in LAYERS"


def test_no_import_runs_back_up_a_layer():
    graph = product_graph()
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                    if LAYER_OF[layer(target)] > LAYER_OF[layer(module)])
    assert not upward


def test_nothing_but_the_package_itself_imports_the_cli():
    graph = product_graph()
    assert not sorted(f"{module} -> {target}" for module, targets in graph.items() if layer(module) != "cli"
                      for target in targets if layer(target) == "cli")


def test_cohorts_never_import_training():
    graph = product_graph()
    assert not sorted(f"{module} -> {target}" for module, targets in graph.items() if layer(module) == "cohorts"
                      for target in targets if layer(target) == "training")


def test_test_modules_never_import_conftest():
    importers = [path.name for path in (ROOT / "Testing").glob("*.py") if path.name != "conftest.py"
                 and any(isinstance(node, ast.ImportFrom) and node.module == "conftest"
                         for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert not importers
