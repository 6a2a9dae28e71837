"""Stand-ins for the Slicer application around a module: ``slicer.app``, the main window, the module panel and
``slicer.i18n``.

* :class:`SlicerApplication` answers what the module and ``slicer.util`` ask of ``qSlicerApplication``
  (``defaultScenePath``, ``temporaryPath``, ``applicationName``, ``testingEnabled()`` (False: the module runs as
  for a user), ``startupEnvironment()``, ``layoutManager()`` (None: no views, as ``slicer-core`` has none),
  ``moduleManager()``, ``translate``); everything else (``processEvents``, ``topLevelWidgets``, cursors) is the
  real ``QApplication``'s;
* :class:`ModuleManager` emits ``moduleAboutToBeUnloaded(QString)`` when the application exits;
* :class:`ModulePanel` is ``qSlicerScriptedLoadableModuleWidget``: a ``qMRMLWidget`` with a vertical layout and
  ``isEntered`` (true while the module is shown);
* :func:`tr` and :func:`translate` are ``slicer.i18n``'s (``Base/Python/slicer/i18n.py``, 5.10.0 and 5.12.3): the
  text in the application's language, for a context named after the calling file (no translation is installed).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property, Signal

from .mrml_widgets import qMRMLWidget
from .pythonqt import pythonqt_class

_Object: Any = pythonqt_class(QtCore.QObject)


class ModuleManager(_Object):
    """Slicer's module manager, as far as a module widget uses it."""

    moduleAboutToBeUnloaded = Signal(str)


class ModulePanel(qMRMLWidget):
    """The panel Slicer gives a scripted module's widget (``qSlicerScriptedLoadableModuleWidget``)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """A panel with a vertical layout, not entered."""
        super().__init__(parent)
        self.setLayout(QtWidgets.QVBoxLayout())
        self._entered = False

    def _get_entered(self) -> bool:
        return self._entered

    def _set_entered(self, entered: bool) -> None:
        self._entered = entered

    isEntered = Property(bool, _get_entered, _set_entered)


class SlicerApplication:
    """``slicer.app``: see the module's docstring."""

    applicationName = "Slicer"

    def __init__(self, application: QtWidgets.QApplication, default_scene_path: Path, temporary_path: Path) -> None:
        """The application with its default scene folder and temporary folder."""
        self._application = application
        self.defaultScenePath = str(default_scene_path)
        self.temporaryPath = str(temporary_path)
        self._module_manager = ModuleManager()

    def __getattr__(self, name: str) -> Any:
        """The real ``QApplication``'s attribute."""
        return getattr(self._application, name)

    def testingEnabled(self) -> bool:
        """False: dialogs are shown (and recorded), as for a user."""
        return False

    def startupEnvironment(self) -> QtCore.QProcessEnvironment:
        """The environment Slicer was started in (this process's)."""
        return QtCore.QProcessEnvironment.systemEnvironment()

    def layoutManager(self) -> None:
        """No views."""
        return None

    def moduleManager(self) -> ModuleManager:
        """The module manager."""
        return self._module_manager

    def translate(self, context: str, text: str) -> str:
        """``text`` in the application's language."""
        return QtCore.QCoreApplication.translate(context, text)


def translate(context: str, text: str) -> str:
    """``slicer.i18n.translate``: ``text`` translated in ``context``."""
    import slicer

    return slicer.app.translate(context, text)


def tr(text: str) -> str:
    """``slicer.i18n.tr``: ``text`` translated in the context of the calling file."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    context = Path(caller.f_code.co_filename).stem if caller is not None else ""
    return translate(context, text)


def python_slicer_launcher(folder: Path, python: str) -> Path:
    """A ``PythonSlicer`` in ``folder`` that runs ``python``, as Slicer's launcher puts its own on ``PATH``."""
    launcher = folder / "PythonSlicer"
    launcher.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


__all__ = ["ModuleManager", "ModulePanel", "SlicerApplication", "python_slicer_launcher", "tr", "translate"]
