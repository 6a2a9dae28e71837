"""Stand-in for ``slicer.ScriptedLoadableModule``: the base classes of a scripted module.

Behaves, for a module such as DEN Extractor, as Slicer's ``Base/Python/slicer/ScriptedLoadableModule.py`` does in
5.10.0 and 5.12.3 (the file is the same in both):

* ``ScriptedLoadableModule(parent)``: fills ``parent``'s title, categories, dependencies, contributors, help and
  acknowledgement with the template's values (the module overwrites them), names the module after its class and
  registers its ``runTest`` in ``slicer.selfTests``;
* ``ScriptedLoadableModuleWidget(parent)``: ``moduleName`` is the class name without ``Widget``; with a parent
  (as Slicer creates it) ``layout`` is the parent's layout and nothing else happens until Slicer calls ``setup()``;
  without one, a ``qMRMLWidget`` with a vertical layout and the scene is made, set up and shown;
  ``resourcePath(name)`` is ``Resources/<name>`` beside the module file (``slicer.util.modulePath``); the module
  manager's ``moduleAboutToBeUnloaded(QString)`` (Slicer's exit) calls ``cleanup()``; ``setup()`` adds the
  developer section only in developer mode, which the stand-in application leaves off (so it adds nothing);
* ``ScriptedLoadableModuleLogic``: ``getParameterNode()`` is the scene's singleton ``vtkMRMLScriptedModuleNode``
  tagged with the module name (its ``ModuleName`` attribute restored after a Close Scene), created when missing;
* ``ScriptedLoadableModuleTest``: a ``unittest.TestCase`` whose ``runTest`` runs every method with "test" in its
  name between ``setUp`` and ``tearDown``; ``delayDisplay`` is ``slicer.util.delayDisplay``.
"""

from __future__ import annotations

import importlib
import logging
import os
import unittest
from typing import Any

import slicer
from slicer.i18n import tr as _

__all__ = ["ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleTest",
           "ScriptedLoadableModuleWidget"]


class ScriptedLoadableModule:
    """The module's description object; Slicer passes ``parent`` (``qSlicerScriptedLoadableModule``)."""

    def __init__(self, parent: Any) -> None:
        """Give ``parent`` the template's texts and register the module's self-test."""
        super().__init__()
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = _("This module was created from a template and the help section has not yet been updated.")
        parent.acknowledgementText = ""
        if not hasattr(slicer, "selfTests"):
            slicer.selfTests = {}
        slicer.selfTests[self.moduleName] = self.runTest

    def resourcePath(self, filename: str) -> str:
        """``Resources/<filename>`` beside the module file."""
        return os.path.join(os.path.dirname(self.parent.path), "Resources", filename)

    def runTest(self, msec: int = 100, **kwargs: Any) -> None:
        """Run the module's ``<ModuleName>Test``."""
        module = importlib.import_module(self.__module__)
        test_case = getattr(module, self.moduleName + "Test")()
        test_case.messageDelay = msec
        test_case.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    """The module's panel; Slicer passes ``parent`` (the panel widget) and calls ``setup()``, ``enter()``..."""

    def __init__(self, parent: Any = None) -> None:
        """Hold the panel and its layout (see the module's docstring)."""
        super().__init__()
        import qt

        self.moduleName = self.__class__.__name__.removesuffix("Widget")
        self.developerMode = slicer.util.settingsValue("Developer/DeveloperMode", False, converter=slicer.util.toBool)
        if parent:
            self.parent = parent
        else:
            self.parent = slicer.qMRMLWidget()
            self.parent.setLayout(qt.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        self.layout = self.parent.layout()
        if not parent:
            self.setup()
            self.parent.show()
        slicer.app.moduleManager().connect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def resourcePath(self, filename: str) -> str:
        """``Resources/<filename>`` beside the module file."""
        return os.path.join(os.path.dirname(slicer.util.modulePath(self.moduleName)), "Resources", filename)

    def cleanup(self) -> None:
        """Called when the application closes (overridden by the module)."""

    def _onModuleAboutToBeUnloaded(self, moduleName: str) -> None:
        if moduleName == self.moduleName:
            self.cleanup()
            slicer.app.moduleManager().disconnect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def setup(self) -> None:
        """Nothing outside developer mode (the stand-in application is not in developer mode)."""
        if self.developerMode:
            raise NotImplementedError("the stand-in application has no developer mode (Reload & Test section)")

    def onReload(self) -> None:
        """Developer mode's Reload (not available in the stand-in application)."""
        raise NotImplementedError("the stand-in application cannot reload a module")


class ScriptedLoadableModuleLogic:
    """The module's logic; ``getParameterNode`` gives the scene's singleton parameter node of the module."""

    def __init__(self, parent: Any = None) -> None:
        """The logic of the module named after the class (without ``Logic``)."""
        super().__init__()
        self.moduleName = self.__class__.__name__.removesuffix("Logic")
        self.isSingletonParameterNode = True

    def getParameterNode(self) -> Any:
        """The module's ``vtkMRMLScriptedModuleNode`` in ``slicer.mrmlScene``, created when missing."""
        scene = slicer.mrmlScene
        if self.isSingletonParameterNode:
            node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node:
                if node.GetAttribute("ModuleName") != self.moduleName:
                    node.SetAttribute("ModuleName", self.moduleName)
                return node
        else:
            for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
                node = scene.GetNthNodeByClass(index, "vtkMRMLScriptedModuleNode")
                if node.GetAttribute("ModuleName") == self.moduleName:
                    return node
        return scene.AddNode(self.createParameterNode())

    def createParameterNode(self) -> Any:
        """A new parameter node tagged with the module's name (not yet in the scene)."""
        scene = slicer.mrmlScene
        node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        node.UnRegister(None)
        if self.isSingletonParameterNode:
            node.SetSingletonTag(self.moduleName)
        node.SetAttribute("ModuleName", self.moduleName)
        node.SetName(scene.GenerateUniqueName(self.moduleName))
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    """The module's self-test case."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Find the test methods (every callable with "test" in its name)."""
        self.moduleTestNames: list[str] = []
        super().__init__(*args, **kwargs)
        self.moduleTestNames = [name for name in dir(self) if "test" in name and callable(getattr(self, name))]

    def delayDisplay(self, message: str, requestedDelay: int | None = None, msec: int | None = None) -> None:
        """Log ``message`` and let the event loop run (``slicer.util.delayDisplay``)."""
        if hasattr(self, "messageDelay"):
            msec = self.messageDelay
        if msec is None:
            msec = requestedDelay
        if msec is None:
            msec = 100
        slicer.util.delayDisplay(message, msec)

    def runTest(self) -> None:
        """Run every test method."""
        if not self.moduleTestNames:
            logging.warning("No test is defined in %s", self.__class__.__name__)
            return
        self.setUpClass()
        for name in self.moduleTestNames:
            self.setUp()
            getattr(self, name)()
            self.tearDown()
        self.tearDownClass()
