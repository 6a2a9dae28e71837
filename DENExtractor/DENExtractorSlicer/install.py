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
import platform
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from DENExtractorLib.errors import describe_error
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


def ensure_requirements() -> bool:
    """Make sure every requirement is met in Slicer's Python, installing with the user's consent.

    Returns True when extraction can start now; False when it cannot (after telling the user why: refused
    platform, declined, failed install, restart needed, or testing mode, where nothing is installed).
    """
    import slicer

    problem = platform_problem()
    if problem is not None:
        slicer.util.errorDisplay(problem, windowTitle=REQUESTER)
        return False
    needed = requirements()
    missing = unmet(needed)
    if not missing:
        return True
    try:
        with tempfile.TemporaryDirectory(prefix="den-extractor-") as folder:
            constraints = numpy_constraint(Path(folder))
            if _has_pip_ensure():
                import slicer.packaging

                slicer.packaging.pip_ensure(
                    [_without_marker(req) for req in missing], constraints=constraints, requester=REQUESTER
                )
            elif not _install_on_slicer_5_10(missing, constraints):
                return False
    except RuntimeError:  # pip_ensure: the user declined
        return False
    except Exception as error:  # pip failed (subprocess.CalledProcessError, OSError)
        logging.exception("Installing %s failed", REQUESTER)
        slicer.util.errorDisplay(install_failure_message(error), windowTitle=REQUESTER)
        return False
    still_unmet = unmet(needed)
    if still_unmet:
        if slicer.app.testingEnabled():
            logging.info("Testing mode: %s not installed (Slicer installs nothing in testing mode)", still_unmet)
        else:
            slicer.util.errorDisplay(
                "These packages are still missing or at the wrong version: "
                + ", ".join(str(req) for req in still_unmet)
                + ". Restart Slicer, then click Extract Features again.",
                windowTitle=REQUESTER,
            )
        return False
    return True


def _has_pip_ensure() -> bool:
    """Whether this Slicer has ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later)."""
    import importlib.util

    try:
        return importlib.util.find_spec("slicer.packaging") is not None
    except (ImportError, ValueError):
        return False


def _install_on_slicer_5_10(missing: list[Requirement], constraints: Path) -> bool:
    """Slicer 5.10, which has no ``pip_ensure``: ask, install with ``slicer.util.pip_install``, offer a restart.

    Returns True when the packages can be used without a restart.
    """
    import slicer

    if slicer.app.testingEnabled():
        logging.info("Testing mode: not installing %s", ", ".join(str(req) for req in missing))
        return False
    listed = "\n".join(f"- {_without_marker(req)}" for req in missing)
    question = (
        f"DEN Extractor needs {len(missing)} Python package(s) that are missing or too old:\n{listed}\n\n"
        "Install them into Slicer's Python now with pip? This downloads several hundred megabytes."
    )
    if not slicer.util.confirmOkCancelDisplay(question, windowTitle=REQUESTER):
        return False
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
        return False
    return True


def _without_marker(req: Requirement) -> str:
    """The requirement as pip's command line takes it, without its (already evaluated) marker."""
    return f"{req.name}{req.specifier}"
