"""The smallest Slicer around a scripted module, for tests: real Qt (PySide6, offscreen), a real MRML scene.

:func:`slicer_application` puts into ``sys.modules`` (for the test process only, undone on exit) what a module file
such as ``DENExtractor/DENExtractor.py`` imports from Slicer and does not find in ``slicer-core``:

* ``qt``: PythonQt's behaviour over PySide6 (:mod:`.pythonqt`);
* ``ctk``: ``ctkCollapsibleButton``, ``ctkPathLineEdit``, ``ctkMessageBox`` (:mod:`.ctk_widgets`);
* ``slicer.qMRMLWidget``, ``slicer.qMRMLNodeComboBox``, ``slicer.qMRMLSegmentSelectorWidget`` (:mod:`.mrml_widgets`),
  registered for the ``.ui`` loader;
* ``slicer.ScriptedLoadableModule`` (:mod:`.scripted_module`), ``slicer.parameterNodeWrapper``
  (:mod:`.parameter_node_wrapper`), ``slicer.i18n``, ``slicer.app``, ``slicer.mrmlScene`` and ``slicer.modules``
  (:mod:`.application`).

``slicer.util`` is ``slicer-core``'s own, which for every function the module and these stand-ins use
(``loadUI``, ``childWidgetVariables``, ``findChildren``, ``errorDisplay``, ``tryWithErrorDisplay``, ``NodeModify``,
``VTKObservationMixin``, ``getNodesByClass``, ``modulePath``, ``settingsValue``, ``startupEnvironment``,
``delayDisplay``) is Slicer's ``Base/Python/slicer/util.py`` of 5.10.0 and 5.12.3 (compared function by function);
with the stand-ins under it, it runs as it does in Slicer. The stand-ins' docstrings name the Slicer and CTK sources
they behave like; none of their code is copied.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

STANDIN_MODULES = {"qt": "pythonqt", "ctk": "ctk_widgets"}


@dataclass
class SlicerSession:
    """The running stand-in application: its scene, main window, dialogs shown and handler clock."""

    scene: Any
    app: Any
    main_window: Any
    dialogs: list
    clock: Any
    modules: Any
    widgets: list = field(default_factory=list)

    def open_module(self, module_file: Path) -> tuple[Any, Any]:
        """Load a scripted module file as Slicer does and show its panel: the module object, the widget.

        Slicer imports the file by its name, creates the module with a ``qSlicerScriptedLoadableModule`` parent
        (holding the file's ``path``), creates the widget with its panel as parent, calls ``setup()``, and when the
        module is shown sets ``isEntered`` and calls ``enter()``.
        """
        name = module_file.stem
        spec = importlib.util.spec_from_file_location(name, module_file)
        assert spec is not None and spec.loader is not None
        module_code = importlib.util.module_from_spec(spec)
        sys.modules[name] = module_code
        spec.loader.exec_module(module_code)
        description = types.SimpleNamespace(path=str(module_file))
        module = getattr(module_code, name)(description)
        setattr(self.modules, name.lower(), description)
        from .application import ModulePanel

        panel = ModulePanel()
        panel.setMRMLScene(self.scene)
        self.main_window.setCentralWidget(panel)
        widget = getattr(module_code, name + "Widget")(panel)
        widget.setup()
        panel.isEntered = True
        widget.enter()
        self.main_window.show()
        self.widgets.append(widget)
        return module, widget

    def exit_application(self) -> None:
        """What Slicer does at exit for each module: ``moduleAboutToBeUnloaded`` (the widget's ``cleanup()``)."""
        for widget in self.widgets:
            self.app.moduleManager().moduleAboutToBeUnloaded.emit(widget.moduleName)
        self.widgets.clear()

    def run_until(self, condition: Callable[[], bool], limit_s: float, what: str) -> None:
        """Run Qt's event loop until ``condition()`` holds; fail (not hang) after ``limit_s`` seconds."""
        from PySide6 import QtCore

        loop = QtCore.QEventLoop()
        check = QtCore.QTimer()
        check.setInterval(5)
        check.timeout.connect(lambda: condition() and loop.quit())
        give_up = QtCore.QTimer()
        give_up.setSingleShot(True)
        give_up.timeout.connect(loop.quit)
        if condition():
            return
        check.start()
        give_up.start(int(limit_s * 1000))
        loop.exec()
        check.stop()
        give_up.stop()
        if not condition():
            pytest.fail(f"{what}: not reached after {limit_s:.0f} s")


@contextlib.contextmanager
def slicer_application(folder: Path, scene: Any) -> Iterator[SlicerSession]:
    """The stand-in Slicer, on ``scene`` (a real ``vtkMRMLScene``), with its folders under ``folder``
    (``defaultScenePath``, ``temporaryPath``, and ``bin`` holding ``PythonSlicer``, on ``PATH``)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import slicer
    from PySide6 import QtWidgets

    qt_application = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["Slicer"])
    with pytest.MonkeyPatch.context() as patch:
        for name, module_name in STANDIN_MODULES.items():
            patch.setitem(sys.modules, name, importlib.import_module(f"{__name__}.{module_name}"))
        from . import application, ctk_widgets, mrml_widgets, pythonqt

        i18n = types.ModuleType("slicer.i18n")
        i18n.tr, i18n.translate = application.tr, application.translate  # type: ignore[attr-defined]
        patch.setitem(sys.modules, "slicer.i18n", i18n)
        patch.setattr(slicer, "i18n", i18n, raising=False)
        folders = {name: folder / name for name in ("scenes", "temporary", "bin")}
        for path in folders.values():
            path.mkdir(parents=True, exist_ok=True)
        application.python_slicer_launcher(folders["bin"], sys.executable)
        patch.setenv("PATH", os.pathsep.join((str(folders["bin"]), os.environ.get("PATH", ""))))
        app = application.SlicerApplication(qt_application, folders["scenes"], folders["temporary"])
        modules = types.SimpleNamespace()
        for name, value in {"app": app, "mrmlScene": scene, "modules": modules,
                            "qMRMLWidget": mrml_widgets.qMRMLWidget,
                            "qMRMLNodeComboBox": mrml_widgets.qMRMLNodeComboBox,
                            "qMRMLSegmentSelectorWidget": mrml_widgets.qMRMLSegmentSelectorWidget,
                            "qMRMLSortFilterProxyModel": mrml_widgets.qMRMLSortFilterProxyModel}.items():
            patch.setattr(slicer, name, value, raising=False)
        for name, module_name in {"slicer.ScriptedLoadableModule": "scripted_module",
                                  "slicer.parameterNodeWrapper": "parameter_node_wrapper"}.items():
            module = importlib.import_module(f"{__name__}.{module_name}")
            patch.setitem(sys.modules, name, module)
            patch.setattr(slicer, name.split(".")[1], module, raising=False)
        patch.setattr(pythonqt, "CUSTOM_WIDGETS", [
            mrml_widgets.qMRMLWidget, mrml_widgets.qMRMLNodeComboBox, mrml_widgets.qMRMLSegmentSelectorWidget,
            ctk_widgets.ctkCollapsibleButton, ctk_widgets.ctkPathLineEdit,
        ])
        main_window = pythonqt.pythonqt_class(QtWidgets.QMainWindow)()
        main_window.objectName = "qSlicerMainWindow"
        main_window.resize(480, 600)
        session = SlicerSession(scene, app, main_window, ctk_widgets.SHOWN, pythonqt.HANDLER_CLOCK, modules)
        try:
            yield session
        finally:
            session.exit_application()
            main_window.close()
            main_window.deleteLater()
            qt_application.processEvents()
