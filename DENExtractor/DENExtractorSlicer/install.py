"""The Python packages extraction needs, checked by version and installed into Slicer's Python with consent.

One list serves pip and Slicer: ``Resources/requirements.txt`` (pyproject.toml reads it for ``pip install``).
On Slicer 5.12 and later :func:`ensure_requirements` hands what is missing to ``slicer.packaging.pip_ensure``,
which asks, installs, checks versions, skips installs in testing mode and offers a restart when an upgraded package
was already imported; on Slicer 5.10 a small fallback here does the same. Either way pip runs with Slicer's own
numpy pinned (a constraints file), so no package can replace it. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from subprocess import CalledProcessError

from DENExtractorLib.errors import DENError, describe_error
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"

REQUESTER = "DEN Extractor"

LONG_PATHS_URL = "https://pip.pypa.io/warnings/enable-long-paths"

SAME_PACKAGE = {"tensorflow-cpu": ("tensorflow",), "tensorflow": ("tensorflow-cpu",)}
"""Distributions that install the same ``tensorflow`` package: either one meets a requirement for the other (two of
them would overwrite each other's files)."""


def requirements(path: Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """Read the requirements file: one requirement a line; comments, blank lines and pip options are skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def applicable(needed: Iterable[Requirement], environment: Mapping[str, str] | None = None) -> list[Requirement]:
    """Return the requirements whose environment marker holds here (or in ``environment``)."""
    return [req for req in needed if req.marker is None or req.marker.evaluate(dict(environment or {}))]


def installed_version(distribution: str) -> str | None:
    """Return the installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet(
    needed: Iterable[Requirement], version_of: Callable[[str], str | None] = installed_version
) -> list[Requirement]:
    """Return the applicable requirements that are not installed, or installed at a version they exclude.

    An installed distribution that provides the same package (:data:`SAME_PACKAGE`) at an accepted version meets
    the requirement too.
    """
    missing = []
    for req in applicable(needed):
        names = (req.name, *SAME_PACKAGE.get(req.name, ()))
        versions = [version for version in map(version_of, names) if version is not None]
        if not any(req.specifier.contains(version, prereleases=True) for version in versions):
            missing.append(req)
    return missing


def numpy_constraint(folder: Path, version_of: Callable[[str], str | None] = installed_version) -> Path:
    """Write a pip constraints file pinning the installed numpy (Slicer's) into ``folder``; return its path."""
    path = Path(folder) / "den-extractor-constraints.txt"
    version = version_of("numpy")
    path.write_text(f"numpy=={version}\n" if version else "", encoding="utf-8")
    return path


def platform_problem(system: str | None = None, machine: str | None = None) -> str | None:
    """Why TensorFlow cannot be installed on this platform (None when it can).

    TensorFlow 2.18, the first release built for numpy 2, has no macOS Intel (x86_64) wheel; the last one there,
    2.16, needs numpy < 2 and would downgrade the numpy Slicer ships with. Slicer 5.10 for macOS is an Intel build
    (it also runs, translated, on Apple silicon, where Python reports x86_64 too).
    """
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    if system == "Darwin" and machine.lower() in ("x86_64", "amd64", "i386"):
        return (
            "DEN Extractor needs TensorFlow 2.18 or later, which is not built for macOS on Intel (x86_64) "
            "processors; installing an older TensorFlow would downgrade Slicer's numpy and break Slicer. "
            "On an Apple silicon Mac, use the Apple silicon (arm64) build of Slicer 5.12 or later; otherwise use "
            "den-extract on Linux or Windows."
        )
    return None


def install_failure_message(error: BaseException, system: str | None = None) -> str:
    """The one-paragraph message shown when pip failed; on Windows it names the long-path limit."""
    system = platform.system() if system is None else system
    reason = describe_error(error)
    message = f"Installing the Python packages failed ({reason}). The Python console shows pip's output."
    if system == "Windows":
        message += (
            " On Windows this is most often the 260-character path limit, which TensorFlow's files exceed: enable "
            f"long paths ({LONG_PATHS_URL}; needs administrator rights), restart Slicer and try again."
        )
    return message


def installed_versions() -> dict[str, str]:
    """Return ``{canonical distribution name: version}`` of every installed distribution (caches refreshed)."""
    importlib.invalidate_caches()
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }


def changed_imported(
    before: Mapping[str, str],
    after: Mapping[str, str],
    imported: Iterable[str] | None = None,
    modules_of: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Return the distributions whose version changed during an install while one of their modules was imported.

    Those keep running their old code until Slicer restarts.

    :param before: versions before the install (see :func:`installed_versions`).
    :param after: versions after it.
    :param imported: the names of the imported modules; None means ``sys.modules``.
    :param modules_of: top-level module name -> distribution names; None means
        ``importlib.metadata.packages_distributions()``.
    """
    imported = set(sys.modules if imported is None else imported)
    modules_of = importlib.metadata.packages_distributions() if modules_of is None else modules_of
    distributions_imported = {
        canonicalize_name(distribution)
        for module, distributions in modules_of.items()
        if module in imported
        for distribution in distributions
    }
    return sorted(
        name
        for name, version in after.items()
        if before.get(name) != version and name in distributions_imported
    )


DECLINED_MESSAGE = "Installation declined: nothing was installed. Extract Features asks again next time."
PYTHON_SLICER_MISSING = (
    "Slicer's Python launcher (PythonSlicer) was not found next to Slicer, so packages cannot be installed and "
    "the extraction cannot run: reinstall Slicer, or start it from its own folder."
)


def install_problem(error: BaseException, slicer_showed_failure: bool) -> tuple[str, bool]:
    """What the user is told about a failed install: the message and whether it needs a dialog of its own.

    A declined consent (``pip_ensure``'s ``RuntimeError``) is said once, in the status line; a missing
    ``PythonSlicer`` (5.10's ``pip_install``'s ``RuntimeError``) and a failed pip get one dialog each, except that
    Slicer 5.12 has already shown its own dialog for a failed pip (``slicer_showed_failure``).
    """
    text = str(error)
    if isinstance(error, RuntimeError) and "declined" in text.lower():
        return DECLINED_MESSAGE, False
    if isinstance(error, RuntimeError) and "PythonSlicer" in text:
        return PYTHON_SLICER_MISSING, True
    return install_failure_message(error), not (slicer_showed_failure and isinstance(error, CalledProcessError))


def still_missing_message(still_unmet: Iterable[Requirement]) -> str:
    """The message for packages still missing after an install: names and versions, without markers."""
    names = ", ".join(display_name(req) for req in still_unmet)
    return f"These packages are still missing or at the wrong version: {names}. Restart Slicer, then click " \
           "Extract Features again."


def display_name(req: Requirement) -> str:
    """A requirement as the user reads it: name and versions, without its environment marker."""
    return _without_marker(req)


def python_slicer() -> str:
    """The path of Slicer's ``PythonSlicer`` (the worker's interpreter), found as Slicer's own ``pip_install``
    finds it (on ``PATH``, which Slicer's launcher sets), else beside this Python.

    :raises DENError: when there is none.
    """
    found = shutil.which("PythonSlicer")
    if found:
        return found
    beside = Path(sys.executable).with_name("PythonSlicer.exe" if os.name == "nt" else "PythonSlicer")
    if beside.is_file():
        return str(beside)
    raise DENError("PythonSlicer", PYTHON_SLICER_MISSING)


def worker_environment() -> dict[str, str] | None:
    """The environment the worker starts in: Slicer's start-up environment (what ``launchConsoleProcess`` gives
    its processes), so ``PythonSlicer`` sets its own paths; None outside the application."""
    import slicer

    startup = getattr(getattr(slicer, "util", None), "startupEnvironment", None)
    return dict(startup()) if callable(startup) else None


_requirements_met = {"answer": False}
"""Whether :func:`ensure_requirements` found every requirement met in this Slicer session: then a click does not
read the packages' metadata again (12 to 20 ms of the main thread each time)."""


def forget_requirements_met() -> None:
    """Check the requirements again at the next click (the worker found one missing, or an install ran)."""
    _requirements_met["answer"] = False


def ensure_requirements() -> str | None:
    """Make sure every requirement is met in Slicer's Python, installing with the user's consent; once they are
    met, later calls in this session answer at once.

    :return: None when extraction can start now; else what the status line says (the user has been told once:
        refused platform, declined, failed install, missing PythonSlicer, restart needed, or testing mode, where
        nothing is installed).
    """
    if _requirements_met["answer"]:
        return None
    problem = _met_or_installed()
    _requirements_met["answer"] = problem is None
    return problem


def _met_or_installed() -> str | None:
    """:func:`ensure_requirements`'s check and install, without the session's answer."""
    import slicer

    problem = platform_problem()
    if problem is not None:
        slicer.util.errorDisplay(problem, windowTitle=REQUESTER)
        return problem
    needed = requirements()
    missing = unmet(needed)
    if not missing:
        return None
    use_pip_ensure = _has_pip_ensure()
    try:
        with tempfile.TemporaryDirectory(prefix="den-extractor-") as folder:
            constraints = numpy_constraint(Path(folder))
            if use_pip_ensure:
                import slicer.packaging

                slicer.packaging.pip_ensure(
                    [_without_marker(req) for req in missing], constraints=constraints, requester=REQUESTER
                )
            else:
                outcome = _install_on_slicer_5_10(missing, constraints)
                if outcome is not None:
                    return outcome
    except Exception as error:  # declined, PythonSlicer missing, pip failed: told apart by install_problem
        message, dialog = install_problem(error, slicer_showed_failure=use_pip_ensure)
        if message != DECLINED_MESSAGE:
            logging.exception("Installing %s's packages failed", REQUESTER)
        if dialog:
            slicer.util.errorDisplay(message, windowTitle=REQUESTER)
        return message
    still_unmet = unmet(needed)
    if not still_unmet:
        return None
    message = still_missing_message(still_unmet)
    if slicer.app.testingEnabled():
        logging.info("Testing mode: %s (Slicer installs nothing in testing mode)", message)
    else:
        slicer.util.errorDisplay(message, windowTitle=REQUESTER)
    return message


def _has_pip_ensure() -> bool:
    """Whether this Slicer has ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later)."""
    import importlib.util

    try:
        return importlib.util.find_spec("slicer.packaging") is not None
    except (ImportError, ValueError):
        return False


def _install_on_slicer_5_10(missing: list[Requirement], constraints: Path) -> str | None:
    """Slicer 5.10, which has no ``pip_ensure``: ask, install with ``slicer.util.pip_install``, offer a restart.

    :return: None when the packages can be used without a restart, else the status line's message.
    """
    import slicer

    listed = "\n".join(f"- {_without_marker(req)}" for req in missing)
    if slicer.app.testingEnabled():
        logging.info("Testing mode: not installing %s", ", ".join(_without_marker(req) for req in missing))
        return still_missing_message(missing)
    question = (
        f"DEN Extractor needs {len(missing)} Python package(s) that are missing or too old:\n{listed}\n\n"
        "Install them into Slicer's Python now with pip? This downloads several hundred megabytes."
    )
    if not slicer.util.confirmOkCancelDisplay(question, windowTitle=REQUESTER):
        return DECLINED_MESSAGE
    before = installed_versions()
    with slicer.util.WaitCursor():
        slicer.util.pip_install(["-c", str(constraints), *(_without_marker(req) for req in missing)])
    changed = changed_imported(before, installed_versions())
    if changed:
        restart = slicer.util.confirmYesNoDisplay(
            "Updated packages were already loaded and keep their old code until Slicer restarts: "
            + ", ".join(changed)
            + ".\n\nRestart Slicer now?",
            windowTitle=REQUESTER,
        )
        if restart:
            slicer.util.restart()
        return "Restart Slicer to use the updated packages."
    return None


def _without_marker(req: Requirement) -> str:
    """The requirement as pip's command line takes it, without its (already evaluated) marker."""
    return f"{req.name}{req.specifier}"
