"""What Slicer needs to load the module, and the requirements it installs: DENExtractorSlicer.install, for real.

Slicer bundles numpy, Pillow, packaging, VTK and its own ``slicer``/``qt``; everything else (nibabel, TensorFlow,
Keras, h5py, matplotlib, slicerio, pynrrd, tqdm) is installed on the first extraction, so loading the module must
not need any of it. The install dialogs themselves need the Slicer application and are not run here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from DENExtractorSlicer import install
from packaging.requirements import Requirement

pytestmark = [pytest.mark.slicer]

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "DENExtractor"

NOT_IN_SLICER = ("nibabel", "tensorflow", "keras", "h5py", "matplotlib", "slicerio", "nrrd", "tqdm")
"""Packages Slicer 5.10 and 5.12 do not bundle (their SuperBuild lists none of them)."""

PLATFORMS = {
    "Linux x86_64": {"platform_system": "Linux", "platform_machine": "x86_64"},
    "Linux aarch64": {"platform_system": "Linux", "platform_machine": "aarch64"},
    "Windows": {"platform_system": "Windows", "platform_machine": "AMD64"},
    "macOS arm64": {"platform_system": "Darwin", "platform_machine": "arm64"},
    "macOS x86_64": {"platform_system": "Darwin", "platform_machine": "x86_64"},
}

BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is not available in this Slicer", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    """
)
"""Run first in a fresh interpreter: from then on, importing any package of argv[1] fails."""


def module_file_project_imports() -> str:
    """The module file's top-level import statements of our own packages, as code (the rest are Slicer's)."""
    tree = ast.parse((MODULE_DIR / "DENExtractor.py").read_text(encoding="utf-8"))
    statements = [
        node
        for node in tree.body
        if (isinstance(node, ast.Import) and node.names[0].name.startswith("DENExtractor"))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("DENExtractor"))
    ]
    assert statements, "the module file imports none of our packages at load: is this the right file?"
    return "\n".join(ast.unparse(node) for node in statements)


def run_with_blocked_packages(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python in which the packages Slicer lacks cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, ",".join(NOT_IN_SLICER)],
        check=False,
        capture_output=True,
        text=True,
        cwd=MODULE_DIR,
    )


def test_the_blocker_blocks():
    completed = run_with_blocked_packages("import nibabel")
    assert completed.returncode != 0 and "nibabel is not available in this Slicer" in completed.stderr


@pytest.mark.slow
def test_the_module_loads_without_the_packages_slicer_lacks():
    package = MODULE_DIR / "DENExtractorSlicer"
    submodules = sorted(path.stem for path in package.glob("*.py") if path.stem != "__init__")
    code = module_file_project_imports() + "\n" + "\n".join(f"import DENExtractorSlicer.{name}" for name in submodules)
    code += "\nprint(sorted(name for name in sys.modules if name.split('.')[0] in BLOCKED))"
    completed = run_with_blocked_packages(code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_one_requirements_list_for_pip_and_slicer():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^dynamic = \[.*\"dependencies\"", pyproject, re.M)
    assert 'dependencies = { file = ["DENExtractor/Resources/requirements.txt"] }' in pyproject
    assert not re.search(r"^dependencies = \[", pyproject, re.M), "a second list in pyproject.toml"
    assert install.REQUIREMENTS_FILE == MODULE_DIR / "Resources" / "requirements.txt"
    names = {requirement.name for requirement in install.requirements()}
    assert {"numpy", "nibabel", "pillow", "tensorflow", "tensorflow-cpu", "keras", "h5py"} <= names


@pytest.mark.parametrize("platform_name", PLATFORMS)
def test_exactly_one_numpy_2_tensorflow_per_platform(platform_name):
    applying = [
        requirement
        for requirement in install.applicable(install.requirements(), PLATFORMS[platform_name])
        if requirement.name in ("tensorflow", "tensorflow-cpu")
    ]
    assert len(applying) == 1
    specifier = applying[0].specifier
    assert not specifier.contains("2.16.2") and not specifier.contains("2.17.1"), "TensorFlow < 2.18 needs numpy < 2"
    assert specifier.contains("2.18.0")


def test_macos_intel_is_refused_with_a_reason():
    message = install.platform_problem("Darwin", "x86_64")
    assert "TensorFlow 2.18" in message and "numpy" in message
    for environment in (PLATFORMS[name] for name in PLATFORMS if name != "macOS x86_64"):
        assert install.platform_problem(environment["platform_system"], environment["platform_machine"]) is None


def test_versions_are_checked_not_only_presence():
    needed = [Requirement("tensorflow-cpu>=2.18"), Requirement("keras>=3.0")]
    installed = {"tensorflow-cpu": "2.16.2", "keras": "3.5.0"}
    assert [str(req) for req in install.unmet(needed, installed.get)] == ["tensorflow-cpu>=2.18"]
    assert [str(req) for req in install.unmet(needed, {}.get)] == ["tensorflow-cpu>=2.18", "keras>=3.0"]
    assert install.unmet(needed, {"tensorflow-cpu": "2.20.0", "keras": "3.5.0"}.get) == []


def test_this_environment_meets_every_requirement():
    assert install.unmet(install.requirements()) == []


def test_a_restart_is_needed_only_for_upgraded_packages_already_imported():
    before = {"numpy": "1.26.4", "h5py": "3.10.0", "tqdm": "4.66.0"}
    after = {"numpy": "2.4.0", "h5py": "3.12.0", "tqdm": "4.66.0", "tensorflow-cpu": "2.20.0"}
    modules_of = {"numpy": ["numpy"], "h5py": ["h5py"], "tqdm": ["tqdm"], "tensorflow": ["tensorflow-cpu"]}
    assert install.changed_imported(before, after, {"numpy", "tqdm"}, modules_of) == ["numpy"]
    assert install.changed_imported(before, after, {"tensorflow"}, modules_of) == ["tensorflow-cpu"]
    assert install.changed_imported(before, before, {"numpy"}, modules_of) == []


def test_a_failed_windows_install_names_the_long_path_limit():
    error = OSError("[Errno 2] No such file or directory: 'C:\\\\Users\\\\...\\\\tensorflow\\\\include\\\\...'")
    windows = install.install_failure_message(error, "Windows")
    assert "long paths" in windows and install.LONG_PATHS_URL in windows
    assert "long paths" not in install.install_failure_message(error, "Linux")
    assert "\n" not in windows


def test_an_installed_full_tensorflow_meets_the_cpu_requirement():
    """Installing tensorflow-cpu over tensorflow would make two distributions write one package."""
    needed = [Requirement("tensorflow-cpu>=2.18")]
    assert install.unmet(needed, {"tensorflow": "2.20.0"}.get) == []
    assert [str(req) for req in install.unmet(needed, {"tensorflow": "2.16.2"}.get)] == ["tensorflow-cpu>=2.18"]


def test_slicers_numpy_is_pinned_during_installs(tmp_path):
    """The constraints file given to pip holds the installed numpy, so no requirement can replace Slicer's."""
    import numpy

    path = install.numpy_constraint(tmp_path)
    assert path.parent == tmp_path
    assert path.read_text(encoding="utf-8") == f"numpy=={numpy.__version__}\n"
    assert [str(req) for req in install.requirements(path)] == [f"numpy=={numpy.__version__}"]


# --- the install flow: declined, failed and a missing PythonSlicer told apart ---------------------------------------

DECLINED_512 = RuntimeError("User declined package installation")
"""What Slicer 5.12's ``slicer.packaging.pip_ensure`` raises when the user clicks Cancel."""

NO_PYTHON_SLICER_510 = RuntimeError("PythonSlicer executable not found")
"""What Slicer 5.10's ``slicer.util.pip_install`` raises without PythonSlicer."""


def test_a_declined_install_is_said_once_without_a_dialog():
    assert install.install_problem(DECLINED_512, slicer_showed_failure=True) == (install.DECLINED_MESSAGE, False)


def test_a_missing_python_slicer_is_not_read_as_declined():
    message, dialog = install.install_problem(NO_PYTHON_SLICER_510, slicer_showed_failure=False)
    assert message == install.PYTHON_SLICER_MISSING and dialog


def test_a_failed_pip_gets_one_dialog_on_each_version():
    failure = subprocess.CalledProcessError(1, "pip install")
    message_512, dialog_512 = install.install_problem(failure, slicer_showed_failure=True)
    message_510, dialog_510 = install.install_problem(failure, slicer_showed_failure=False)
    assert message_512 == message_510 == install.install_failure_message(failure)
    assert (dialog_512, dialog_510) == (False, True)  # 5.12's pip_ensure has shown its own dialog
    assert install.install_problem(OSError("disk full"), slicer_showed_failure=True)[1]


def test_missing_packages_are_named_without_markers():
    needed = [Requirement('tensorflow>=2.18; sys_platform == "linux"'), Requirement("keras>=3.0")]
    message = install.still_missing_message(needed)
    assert "tensorflow>=2.18, keras>=3.0" in message
    assert "sys_platform" not in message and ";" not in message


def test_python_slicer_is_found_as_slicer_finds_it(tmp_path, monkeypatch):
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text("#!/bin/sh\n", encoding="utf-8")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert install.python_slicer() == str(launcher)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(install.DENError, match="PythonSlicer"):
        install.python_slicer()
