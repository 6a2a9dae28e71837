"""DEN Extractor: a 3D Slicer module that extracts deep (DEN) features from a glioblastoma segmentation.

The widget only wires the GUI to the parameter node and to the logic; the work is done by the ``DENExtractorSlicer``
package beside this file (MRML nodes in; features, files and result nodes out) over the Slicer-free core
``DENExtractorLib``. Loading this file imports neither TensorFlow nor any package Slicer does not bundle: those are
needed (and, with the user's consent, installed) only for the first extraction.
"""

import importlib
import json
import math
import sys
import unittest
from pathlib import Path
from typing import Annotated, Union

import numpy as np
import qt
import slicer
import vtk
from DENExtractorLib import MODES, PLANES, DENError, ExtractionCancelled
from DENExtractorSlicer import background, checks, install, results, runs, sample, views
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Default, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#
# DENExtractor
#


class DENExtractor(ScriptedLoadableModule):
    """The module's description, shown in Slicer's module panel and help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DEN Extractor")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["DENExtractor developers (DENExtractor project)"]
        self.parent.helpText = _("""
Extracts deep features from a glioblastoma segmentation with DEN (the Deep Features NIfTI Network), a
two-dimensional convolutional network of five convolution layers: every slice of the segmentation (a segmentation
node or a label map volume, optionally with the MRI it was drawn on) is resized to 224&times;224 and gives one row
of 4096 features. The features are saved as a NumPy array (.npy) with a provenance record (.json) and a heatmap
(.png), and the heatmap is shown in the scene.
<p><b>Reference weights:</b> the bundled weights are a fixed, seeded Keras-default initialisation of the network,
not a trained model. Their features are exactly reproducible, but they are not learned features. For learned
features, load your own trained weights (Advanced &gt; Weights file).</p>
<p>The extraction runs in a separate worker process started with Slicer's own Python, so Slicer stays responsive
(Cancel stops it at once) and TensorFlow is never loaded into Slicer itself; the worker is kept between runs, so only
the first run pays TensorFlow's start-up.</p>
<p>The first extraction installs TensorFlow 2.18 or later (and any other missing package) into Slicer's Python
after asking for your consent, and says when Slicer must be restarted. No data? <b>Load sample</b> adds a synthetic
glioblastoma segmentation. <b>Restore views</b> gives back the layout you had before the results were shown.</p>
<p>Python console: <code>from DENExtractorSlicer import process; outcome = process(getNode("Segmentation"),
output_folder="/tmp/den")</code> (options: segment_ids, image_node, mode, plane, weights, progress, cancel).</p>
<p>See the <a href="https://github.com/denextractor/DENExtractor">documentation</a>. If you use DEN Extractor,
cite the DEN design (P. Ghimire, Deep Features NIfTI Network) and the architecture's inspiration (Diagnostics
2022, 12(4), 1018), and state the model id and weights SHA-256 recorded in the provenance file.</p>
""")
        self.parent.acknowledgementText = _("""
DEN Extractor was developed by the DENExtractor developers after the DEN design of P. Ghimire. It builds on
3D Slicer, TensorFlow/Keras, NumPy, nibabel and Pillow. The module layout follows the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# DENExtractorParameterNode
#


@parameterNodeWrapper
class DENExtractorParameterNode:
    """The module's settings, saved with the scene.

    inputSegmentation - the segmentation node or label map volume to extract features from.
    segmentIds - the segments of a segmentation node that form the tumour (a label map always uses every label).
    imageVolume - optional MRI on the segmentation's grid, fed to the network instead of the label values.
    mode - "reference" (published pipeline) or "oriented" (RAS-reoriented slices along ``plane``).
    plane - the anatomical plane of the slices in oriented mode.
    useBundledWeights - True for the bundled reference weights, False for the file ``weightsPath``.
    weightsPath - the user's weights file (empty when not chosen).
    outputFolder - where results are saved (empty: the saved scene's folder).
    """

    inputSegmentation: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]  # noqa: UP007 - read by parameterNodeWrapper
    segmentIds: list[str]
    imageVolume: vtkMRMLScalarVolumeNode
    mode: Annotated[str, Choice(list(MODES)), Default(MODES[0])]
    plane: Annotated[str, Choice(list(PLANES)), Default(PLANES[0])]
    useBundledWeights: bool = True
    weightsPath: str = ""
    outputFolder: str = ""



#
# DENExtractorWidget
#

RELOADED_PACKAGES = ("DENExtractorSlicer", "DENExtractorLib")
"""The module's own packages, reloaded with it by developer mode's Reload."""

SCENE_URL_CHECK_MS = 1000
"""How often the shown panel looks whether the scene was saved (File > Save sends no event)."""

POLL_INTERVAL_MS = 20
"""How often the timer advances a run: each tick does at most a few milliseconds of main-thread work."""

SAMPLE_POLL_INTERVAL_MS = 50
"""How often the timer looks whether the sample being generated on a thread is ready."""

PHASE_TEXT = {
    "checking": _("Checking the inputs..."),
    "exporting": _("Exporting the inputs for the worker process..."),
    "starting": _("Starting the worker process (the first run takes longer)..."),
    "loading": _("Loading the network in the worker process (the first run takes longer)..."),
    "writing": _("Writing the results..."),
    "finishing": _("Adding the results to the scene..."),
}
"""The status line of each phase of a run (see DENExtractorSlicer.background)."""

_NOTHING_SHOWN = object()
"""The segment list shows no input yet (not even "none"): the next parameter node update fills it."""


class DENExtractorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module's GUI: it only wires widgets to the parameter node and to :class:`DENExtractorLogic`."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._segmentsShownFor = _NOTHING_SHOWN
        self._segmentsObserved = None
        self._segmentsKnown = []
        self._run = None
        self._installing = False
        self._resultFolder = None
        self._viewsBeforeResults = None
        self._timer = None
        self._sample = None
        self._sampleTimer = None

    def setup(self) -> None:
        """Load the .ui file and connect the widgets.

        The input combo box is bound to the parameter node by ``connectGui`` and nothing else listens to it: the
        segment list follows the parameter node (:meth:`_showSegmentsOfInput`), so it never sees a stale input.
        """
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DENExtractor.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DENExtractorLogic()
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._onTimer)
        self._sampleTimer = qt.QTimer()
        self._sampleTimer.setInterval(SAMPLE_POLL_INTERVAL_MS)
        self._sampleTimer.connect("timeout()", self._onSampleTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # File > Save (qSlicerSceneWriter) sets the scene's URL and commits: no save event, and SetURL does not even
        # modify the scene (Slicer 5.10, 5.12). While the panel is shown, a slow timer notices the new URL.
        self._sceneUrl = slicer.mrmlScene.GetURL()
        self._urlTimer = qt.QTimer()
        self._urlTimer.setInterval(SCENE_URL_CHECK_MS)
        self._urlTimer.connect("timeout()", self._onUrlTimer)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneSavedOrImported)

        self.ui.segmentSelector.connect("segmentSelectionChanged(QStringList)", self.onSegmentSelectionChanged)
        self.ui.bundledWeightsRadioButton.connect("toggled(bool)", self.onBundledWeightsToggled)
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.onWeightsPathChanged)
        self.ui.outputFolderPathLineEdit.connect("currentPathChanged(QString)", self.onOutputFolderChanged)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSampleButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.openFolderButton.connect("clicked(bool)", self.onOpenFolderButton)
        self.ui.restoreViewsButton.connect("clicked(bool)", self.onRestoreViewsButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed: stop the run and the worker."""
        if self._run is not None:
            self._run.cancel()
        self._timer.stop()
        self._urlTimer.stop()
        self._sampleTimer.stop()
        background.stop_warm_worker()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self._hideHeatmapsFromImageSelector()
        self._urlTimer.start()

    def exit(self) -> None:
        """Called each time the user opens a different module (a running extraction goes on)."""
        self._urlTimer.stop()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: cancel a running extraction (final) and drop the parameter node."""
        if self._run is not None and not self._run.finished:
            self._run.cancel()
            self._onTimer()
        self._viewsBeforeResults = None
        self.ui.restoreViewsButton.enabled = False
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneSavedOrImported(self, caller, event) -> None:
        """A loaded scene has a folder that can take the results (shown), and maybe result heatmaps (hidden)."""
        self._hideHeatmapsFromImageSelector()
        self._checkCanApply()

    def _onUrlTimer(self) -> None:
        """Show the new output folder once the scene has been saved (or saved elsewhere)."""
        url = slicer.mrmlScene.GetURL()
        if url != self._sceneUrl:
            self._sceneUrl = url
            self._checkCanApply()

    def _hideHeatmapsFromImageSelector(self) -> None:
        """Keep result heatmaps out of the MRI selector (they are scalar volumes, but not images): after a run,
        on entering the module and after a scene is loaded."""
        hidden = [
            node.GetID()
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if node.GetAttribute(checks.ROLE_ATTRIBUTE) == checks.HEATMAP_ROLE
        ]
        self.ui.imageSelector.sortFilterProxyModel().hiddenNodeIDs = hidden

    def initializeParameterNode(self) -> None:
        """Ensure the parameter node exists and is observed; select the first segmentation if none is chosen."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputSegmentation:
            scene = slicer.mrmlScene
            firstNode = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            firstNode = firstNode or scene.GetFirstNodeByClass("vtkMRMLLabelMapVolumeNode")
            if firstNode:
                self._parameterNode.inputSegmentation = firstNode

    def setParameterNode(self, inputParameterNode: DENExtractorParameterNode | None) -> None:
        """Set and observe the parameter node; widgets with a SlicerParameterName property follow it."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        self._segmentsShownFor = _NOTHING_SHOWN
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        """Show the settings that have no automatic GUI binding, then decide whether extraction can start."""
        parameters = self._parameterNode
        if not parameters:
            return
        self._showSegmentsOfInput()
        with _SignalsBlocked(
            self.ui.bundledWeightsRadioButton,
            self.ui.weightsFileRadioButton,
            self.ui.weightsPathLineEdit,
            self.ui.outputFolderPathLineEdit,
        ):
            self.ui.bundledWeightsRadioButton.checked = parameters.useBundledWeights
            self.ui.weightsFileRadioButton.checked = not parameters.useBundledWeights
            self.ui.weightsPathLineEdit.enabled = not parameters.useBundledWeights
            if self.ui.weightsPathLineEdit.currentPath != parameters.weightsPath:
                self.ui.weightsPathLineEdit.currentPath = parameters.weightsPath
            if self.ui.outputFolderPathLineEdit.currentPath != parameters.outputFolder:
                self.ui.outputFolderPathLineEdit.currentPath = parameters.outputFolder
        self.ui.planeComboBox.enabled = parameters.mode == "oriented"
        self._checkCanApply()

    def _showSegmentsOfInput(self) -> None:
        """When the parameter node's input has changed, list its segments and choose them.

        The chosen segments are the previous choice where it still exists, else all segments
        (:func:`DENExtractorSlicer.checks.segments_to_choose`). The input is read from the parameter node, which
        the combo box has already updated when this runs, so the list always belongs to the chosen input.
        """
        node = self._parameterNode.inputSegmentation
        nodeId = node.GetID() if node is not None else None
        if nodeId == self._segmentsShownFor:
            return
        self._segmentsShownFor = nodeId
        isSegmentation = node is not None and node.IsA(checks.SEGMENTATION_CLASS)
        self._observeSegmentsOf(node if isSegmentation else None)
        self.ui.segmentsLabel.visible = isSegmentation
        self.ui.segmentSelector.visible = isSegmentation
        chosen = checks.segments_to_choose(node, list(self._parameterNode.segmentIds))
        with _SignalsBlocked(self.ui.segmentSelector):
            self.ui.segmentSelector.setCurrentNode(node if isSegmentation else None)
            self.ui.segmentSelector.setSelectedSegmentIDs(chosen)
        if isSegmentation and list(self._parameterNode.segmentIds) != chosen:
            self._parameterNode.segmentIds = chosen

    def _observeSegmentsOf(self, node) -> None:
        """Observe the input segmentation's added segments (and stop observing the previous input's)."""
        if self._segmentsObserved is not None:
            self.removeObserver(self._segmentsObserved, slicer.vtkSegmentation.SegmentAdded, self._onSegmentAdded)
        self._segmentsObserved = node
        self._segmentsKnown = checks.segment_ids_of(node)
        if node is not None:
            self.addObserver(node, slicer.vtkSegmentation.SegmentAdded, self._onSegmentAdded)

    def _onSegmentAdded(self, caller, event) -> None:
        """A segment drawn after the input was chosen is chosen too."""
        if not self._parameterNode or self._run is not None or caller is not self._parameterNode.inputSegmentation:
            return
        chosen = checks.segments_after_adding(caller, self._segmentsKnown, list(self._parameterNode.segmentIds))
        self._segmentsKnown = checks.segment_ids_of(caller)
        with _SignalsBlocked(self.ui.segmentSelector):
            self.ui.segmentSelector.setSelectedSegmentIDs(chosen)
        self._parameterNode.segmentIds = chosen

    def _checkCanApply(self) -> None:
        """Enable "Extract Features" only for valid inputs; otherwise say what is wrong in the status line.

        The message is the one the run itself would raise (:func:`DENExtractorSlicer.checks.inputs_problem`).
        """
        if self._run is not None or self._installing:
            return
        problem = self._inputsProblem()
        self.ui.applyButton.enabled = problem is None
        self.ui.applyButton.toolTip = problem or _("Extract the DEN features of every slice of the segmentation.")
        self.ui.statusLabel.text = problem or _("Ready.")
        if self._resultFolder is None:
            folder = self._outputFolder()
            self.ui.outputPathLabel.text = _("Results go to: {folder}").format(folder=folder) if folder else ""
            self.ui.openFolderButton.enabled = bool(folder) and Path(folder).is_dir()

    def _inputsProblem(self) -> str | None:
        parameters = self._parameterNode
        if not parameters:
            return _("The module is not initialised.")
        problem = checks.inputs_problem(
            parameters.inputSegmentation,
            parameters.imageVolume,
            segment_ids=self._chosenSegmentIds(),
            use_bundled_weights=parameters.useBundledWeights,
            weights_path=parameters.weightsPath,
            output_folder=parameters.outputFolder,
            scene_has_url=True,  # never blocked: an unsaved scene's results go under the default scene path
        )
        return None if problem is None else str(problem)

    def _outputFolder(self) -> str | None:
        """The folder the next results go to (chosen, saved scene's, or under Slicer's default scene path)."""
        parameters = self._parameterNode
        if not parameters:
            return None
        try:
            return str(runs.scene_output_folder(
                slicer.mrmlScene, parameters.outputFolder, slicer.app.defaultScenePath
            ))
        except DENError:
            return None

    def _chosenSegmentIds(self) -> list[str] | None:
        """The segments chosen in a segmentation node; None for a label map (every label is used)."""
        node = self._parameterNode.inputSegmentation
        if node is None or not node.IsA(checks.SEGMENTATION_CLASS):
            return None
        return list(self._parameterNode.segmentIds)

    def onSegmentSelectionChanged(self, segmentIds) -> None:
        """Store the segments the user checked."""
        if self._parameterNode:
            self._parameterNode.segmentIds = [str(segmentId) for segmentId in segmentIds]

    def onBundledWeightsToggled(self, checked: bool) -> None:
        """Store the weights choice (bundled reference weights or a file)."""
        if self._parameterNode:
            self._parameterNode.useBundledWeights = checked

    def onWeightsPathChanged(self, path: str) -> None:
        """Store the chosen weights file."""
        if self._parameterNode:
            self._parameterNode.weightsPath = path

    def onOutputFolderChanged(self, path: str) -> None:
        """Store the chosen output folder."""
        if self._parameterNode:
            self._parameterNode.outputFolder = path

    def onLoadSampleButton(self) -> None:
        """Generate the synthetic glioblastoma segmentation on a thread; a timer adds it to the scene and makes it
        the input when it is ready (:meth:`_onSampleTimer`), so the click never holds Slicer's main thread."""
        if self._sample is not None:
            return
        self._sample = sample.SampleInBackground(slicer.mrmlScene)
        self.ui.loadSampleButton.enabled = False
        self.ui.statusLabel.text = _("Generating the sample...")
        self._sampleTimer.start()

    def _onSampleTimer(self) -> None:
        """Add the sample once generated (one import step on the main thread) and choose it as the input."""
        if self._sample is None:
            self._sampleTimer.stop()
            return
        with slicer.util.tryWithErrorDisplay(_("The sample could not be created."), waitCursor=True):
            try:
                node = self._sample.poll()
            except RuntimeError:
                self._endSample()
                raise
            if node is None:
                return
            self._endSample()
            if self._parameterNode:
                self._parameterNode.inputSegmentation = node
        self._checkCanApply()

    def _endSample(self) -> None:
        self._sample = None
        self._sampleTimer.stop()
        self.ui.loadSampleButton.enabled = True

    def onApplyButton(self) -> None:
        """Install the requirements if needed (with consent), then start the extraction in the worker process.

        The button stays disabled while the install dialog and pip run (a second click cannot start a second
        install); the run itself is advanced by the timer (:meth:`_onTimer`), never on this call.
        """
        if self._run is not None or self._installing:
            return
        self._installing = True
        self.ui.applyButton.enabled = False
        self.ui.statusLabel.text = _("Checking the Python packages...")
        python = None
        try:
            problem = install.ensure_requirements()
            if problem is None:
                python = install.python_slicer()
        except DENError as error:
            problem = str(error)
            slicer.util.errorDisplay(problem, windowTitle=_("DEN Extractor"))
        finally:
            self._installing = False
        if problem is not None:
            self._checkCanApply()
            self.ui.statusLabel.text = problem
            return
        parameters = self._parameterNode
        try:
            run = runs.start_extraction(
                parameters.inputSegmentation,
                segment_ids=self._chosenSegmentIds(),
                image_node=parameters.imageVolume,
                mode=parameters.mode,
                plane=parameters.plane,
                weights=None if parameters.useBundledWeights else parameters.weightsPath,
                output_folder=parameters.outputFolder,
                default_folder=slicer.app.defaultScenePath,
                scene=slicer.mrmlScene,
                python=python,
                environment=install.worker_environment(),
            )
        except DENError as error:
            self._checkCanApply()
            self.ui.statusLabel.text = str(error)
            return
        self._run = run
        self._setRunning(True)
        self._timer.start()
        self._onTimer()  # the first step now: progress is shown at once

    def _onTimer(self) -> None:
        """One step of the run (a few milliseconds at most), then show where it is; at its end, its outcome."""
        run = self._run
        if run is None:
            self._timer.stop()
            return
        try:
            state = run.poll()
        except Exception:
            self._endRun()
            raise
        if not run.finished:
            self._showProgress(state)
            return
        self._endRun()
        if run.outcome is not None:
            self._showOutcome(run.outcome)
        elif isinstance(run.error, ExtractionCancelled):
            self.ui.statusLabel.text = _("Cancelled: nothing was written.")
        elif isinstance(run.error, background.WorkerPackagesMissing):
            install.forget_requirements_met()  # the next click runs the install flow
            message = _("{fault} Click Extract Features to install them.").format(fault=str(run.error))
            self.ui.statusLabel.text = message
            slicer.util.errorDisplay(message, windowTitle=_("DEN Extractor"))
        elif run.error is not None:
            self.ui.statusLabel.text = str(run.error)
            slicer.util.errorDisplay(str(run.error), windowTitle=_("DEN Extractor"))

    def _endRun(self) -> None:
        self._timer.stop()
        self._run = None
        self._setRunning(False)

    def _showProgress(self, state) -> None:
        """Show the run's phase; in the network phase the slices done."""
        if state.phase == "network" and state.total:
            self.ui.progressBar.maximum = state.total
            self.ui.progressBar.value = state.done
            text = _("Computing features: {done} of {total} slices...").format(done=state.done, total=state.total)
        else:
            self.ui.progressBar.maximum = 0  # busy
            text = PHASE_TEXT.get(state.phase, state.phase)
        self.ui.statusLabel.text = text

    def onCancelButton(self) -> None:
        """Stop the extraction at once: the worker is ended, nothing is written or added."""
        if self._run is not None:
            self._run.cancel()
            self._onTimer()

    def _setRunning(self, running: bool) -> None:
        """Lock the inputs while an extraction runs; only Cancel stays active."""
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.advancedCollapsibleButton.enabled = not running
        self.ui.cancelButton.enabled = running
        if running:
            self.ui.applyButton.enabled = False
            self.ui.progressBar.maximum = 0
            self.ui.progressBar.value = 0
            self.ui.outputPathLabel.text = ""
            self.ui.openFolderButton.enabled = False
            self._resultFolder = None
        else:
            self.ui.progressBar.maximum = 100
            self._checkCanApply()

    def _showOutcome(self, outcome) -> None:
        """Show where the results were saved, and the results in the views (remembering the user's views once)."""
        result = outcome.result
        self.ui.progressBar.maximum = 100
        self.ui.progressBar.value = 100
        rows, features = result.features.shape
        message = _("Done: {rows} slices x {features} features, {foreground} of them with tumour.")
        self.ui.statusLabel.text = message.format(rows=rows, features=features, foreground=len(result.foreground_rows))
        paths = outcome.paths
        self._resultFolder = paths["npy"].parent
        self.ui.outputPathLabel.text = str(paths["npy"])
        self.ui.outputPathLabel.toolTip = "\n".join(str(path) for path in paths.values())
        self.ui.openFolderButton.enabled = True
        self._hideHeatmapsFromImageSelector()
        viewsBefore = views.show_results(outcome.nodes)
        if self._viewsBeforeResults is None:
            self._viewsBeforeResults = viewsBefore
        self.ui.restoreViewsButton.enabled = self._viewsBeforeResults is not None

    def onReload(self) -> None:
        """Developer mode's Reload: stop the worker and reload the module's own packages too, not only this file."""
        if self._run is not None:
            self._run.cancel()
        background.stop_warm_worker()
        for name in [name for name in sys.modules if name.split(".")[0] in RELOADED_PACKAGES]:
            del sys.modules[name]
        importlib.invalidate_caches()
        ScriptedLoadableModuleWidget.onReload(self)

    def onRestoreViewsButton(self) -> None:
        """Give back the layout and Red view the user had before the first results were shown."""
        if self._viewsBeforeResults is not None:
            views.restore_views(self._viewsBeforeResults)
            self._viewsBeforeResults = None
        self.ui.restoreViewsButton.enabled = False

    def onOpenFolderButton(self) -> None:
        """Open the folder of the last results (or the one the next results go to) in the file browser."""
        folder = self._resultFolder or self._outputFolder()
        if folder is not None:
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))


class _SignalsBlocked:
    """Context manager that blocks the Qt signals of some widgets, so that GUI updates do not loop back."""

    def __init__(self, *widgets) -> None:
        self._widgets = widgets
        self._previous = []

    def __enter__(self) -> None:
        self._previous = [widget.blockSignals(True) for widget in self._widgets]

    def __exit__(self, *exception) -> None:
        for widget, previous in zip(self._widgets, self._previous, strict=True):
            widget.blockSignals(previous)


#
# DENExtractorLogic
#


class DENExtractorLogic(ScriptedLoadableModuleLogic):
    """The module's logic, usable without the GUI; it delegates to ``DENExtractorSlicer.runs``.

    Example (Slicer's Python console)::

        import DENExtractor
        logic = DENExtractor.DENExtractorLogic()
        outcome = logic.process(getNode("Segmentation"), outputFolder="/tmp/den")  # Slicer stays responsive
        outcome.result.features.shape  # (slices, 4096)
        outcome.paths["npy"]           # /tmp/den/Segmentation_reference_den.npy

        run = logic.start(getNode("Segmentation"), outputFolder="/tmp/den")  # returns at once
        run.poll(); run.progress       # advance it from a timer, see where it is
        outcome = logic.wait(run)      # or wait for it; run.cancel() stops it, leaving nothing
    """

    def getParameterNode(self) -> DENExtractorParameterNode:
        """Return the module's parameter node in the scene, wrapped with typed access."""
        return DENExtractorParameterNode(super().getParameterNode())

    def start(
        self,
        inputNode,
        *,
        segmentIds: list[str] | None = None,
        imageNode=None,
        mode: str = "reference",
        plane: str = "axial",
        weightsPath: str | Path | None = None,
        outputFolder: str | Path | None = None,
    ):
        """Check the inputs and return the extraction run without waiting (the non-blocking form for scripts).

        The run (``DENExtractorSlicer.BackgroundExtraction``) advances one bounded step per ``run.poll()`` (call it
        from a ``qt.QTimer``, as the module does), ``run.progress`` says where it is, ``run.cancel()`` stops it
        leaving no file and no node; when ``run.finished``, ``run.outcome`` holds the result (or ``run.error`` the
        fault). :meth:`wait` waits for it. Parameters as :meth:`process`.

        :raises DENExtractorLib.DENError: for any fault in the inputs or settings (one-line message).
        """
        return runs.start_extraction(
            inputNode,
            segment_ids=segmentIds,
            image_node=imageNode,
            mode=mode,
            plane=plane,
            weights=weightsPath,
            output_folder=outputFolder,
            default_folder=slicer.app.defaultScenePath,
            scene=slicer.mrmlScene,
            python=install.python_slicer(),
            environment=install.worker_environment(),
        )

    def wait(self, run, *, progress=None, cancel=None):
        """Wait for a run from :meth:`start` while Slicer's event loop keeps running; return its outcome.

        :raises DENExtractorLib.DENError: the run's fault; ``ExtractionCancelled`` when it was cancelled.
        """
        return runs.wait_for(run, progress=progress, cancel=cancel)

    def process(
        self,
        inputNode,
        *,
        segmentIds: list[str] | None = None,
        imageNode=None,
        mode: str = "reference",
        plane: str = "axial",
        weightsPath: str | Path | None = None,
        outputFolder: str | Path | None = None,
        progress=None,
        cancel=None,
    ):
        """Extract the DEN features of a segmentation or label map node, save them and add the result nodes.

        The work runs in the worker process (TensorFlow never loads into Slicer); this call waits for it while
        Slicer's event loop keeps running (the views redraw, the GUI answers): for scripts and the Python console.
        The module's button runs the same extraction without waiting; :meth:`start` is the non-blocking form.

        :param inputNode: a ``vtkMRMLSegmentationNode`` or ``vtkMRMLLabelMapVolumeNode``.
        :param segmentIds: the segments of a segmentation node to use; None uses all of them.
        :param imageNode: optional ``vtkMRMLScalarVolumeNode`` holding the segmentation, fed instead of the labels.
        :param mode: "reference" or "oriented".
        :param plane: "axial", "coronal" or "sagittal" (oriented mode).
        :param weightsPath: a weights file; None (or empty) uses the bundled reference weights.
        :param outputFolder: where to save the results; None (or empty): the saved scene's folder, else
            ``DENExtractor`` under Slicer's default scene path.
        :param progress: ``progress(done, total)`` called as slices are computed.
        :param cancel: ``cancel()`` polled while waiting; returning True stops with ExtractionCancelled.
        :return: ``DENExtractorSlicer.ProcessOutcome`` (``.result``, ``.nodes``, ``.paths``).
        :raises DENExtractorLib.DENError: for any fault in the inputs or settings (one-line message).
        """
        run = self.start(inputNode, segmentIds=segmentIds, imageNode=imageNode, mode=mode, plane=plane,
                         weightsPath=weightsPath, outputFolder=outputFolder)
        return self.wait(run, progress=progress, cancel=cancel)


#
# DENExtractorTest
#

GOLDEN_FILE = Path(__file__).resolve().parent / "Resources" / "golden_features.json"
"""The pinned features of the self-test's synthetic segmentation (bundled weights, reference mode), computed by
the core; ``Testing/test_slicer_process.py`` checks them against the core, this self-test against Slicer."""


def golden_values() -> dict:
    """The pinned values: shape and seed of the synthetic case, feature shape, foreground rows, some features
    (row, column, value), the feature sum and the relative tolerance."""
    return json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))


class DENExtractorTest(ScriptedLoadableModuleTest):
    """The module's self-test, run inside Slicer (Reload and Test, or ``--testing``).

    What needs no TensorFlow always runs: input checks, the sample, the export of nodes for the worker (transforms
    hardened), the result nodes and the views. What needs the worker's TensorFlow (golden features, Cancel while
    the network runs) is skipped (``unittest.SkipTest``, reported as skipped, never as passed) where the packages
    are not installed: Slicer installs nothing in testing mode.
    """

    def runTest(self):
        """Run every test; a skipped one is reported as skipped (Reload and Test runs tests without unittest)."""
        skipped = []
        self.setUpClass()
        for name in self.moduleTestNames:
            self.setUp()
            try:
                getattr(self, name)()
            except unittest.SkipTest as reason:
                skipped.append(f"{name} ({reason})")
            finally:
                self.tearDown()
        self.tearDownClass()
        if skipped:
            self.delayDisplay("Skipped, not passed: " + "; ".join(skipped))

    def setUp(self):
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def _syntheticLabelMap(self):
        from DENExtractorLib import demo

        golden = golden_values()
        data, affine = demo.synthetic_glioblastoma(shape=tuple(golden["shape"]), seed=golden["seed"])
        # DENExtractorLib arrays are (i, j, k); Slicer's volume arrays are (k, j, i).
        return slicer.util.addVolumeFromArray(
            np.ascontiguousarray(np.transpose(data, (2, 1, 0))),
            ijkToRAS=np.asarray(affine, dtype=float),
            name="synthetic",
            nodeClassName="vtkMRMLLabelMapVolumeNode",
        ), data

    def _requireWorkerPackages(self) -> None:
        """Skip (not pass) a test that needs TensorFlow in the worker when the packages are not installed."""
        missing = install.unmet(install.requirements())
        if missing:
            names = ", ".join(install.display_name(requirement) for requirement in missing)
            raise unittest.SkipTest(f"needs {names}, not installed (Slicer installs nothing in testing mode)")

    def test_InputsProblem(self):
        """The Extract button's check (the run's own) accepts a label map and refuses missing inputs."""
        self.delayDisplay("Checking input validation")
        labelMap, _data = self._syntheticLabelMap()
        folder = slicer.app.temporaryPath
        self.assertIsNone(checks.inputs_problem(labelMap, output_folder=folder))
        self.assertEqual(str(checks.inputs_problem(None)), "input: choose a segmentation or a label map volume")
        self.assertEqual(
            str(checks.inputs_problem(labelMap, use_bundled_weights=False, output_folder=folder)),
            "weights: choose a weights file, or use the bundled reference weights",
        )
        self.delayDisplay("Input validation passed")

    def test_LoadSample(self):
        """Load sample adds the synthetic glioblastoma as a segmentation with named segments."""
        self.delayDisplay("Loading the sample segmentation")
        node = sample.add_sample_segmentation(slicer.mrmlScene)
        segmentation = node.GetSegmentation()
        names = {segmentation.GetNthSegment(index).GetName() for index in range(segmentation.GetNumberOfSegments())}
        self.assertEqual(names, {"necrosis", "oedema", "non-enhancing tumour", "enhancing"})
        self.assertIsNone(checks.inputs_problem(node, output_folder=slicer.app.temporaryPath))
        self.delayDisplay("Load sample passed")

    def test_ExportForTheWorker(self):
        """The worker receives the label map's voxels unchanged, with a parent transform hardened into the grid."""
        import tempfile

        from DENExtractorSlicer import case_files, export

        self.delayDisplay("Exporting a label map under a transform")
        labelMap, data = self._syntheticLabelMap()
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
        shift = np.eye(4)
        shift[:3, 3] = (5.0, 0.0, 0.0)
        transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
        labelMap.SetAndObserveTransformNodeID(transform.GetID())
        with tempfile.TemporaryDirectory() as folder:
            for _step in export.export_steps(labelMap, None, None, Path(folder)):
                pass
            volume, image, record = case_files.read_case(Path(folder))
        np.testing.assert_array_equal(volume.data, data)
        ijkToRas = vtk.vtkMatrix4x4()
        labelMap.GetIJKToRASMatrix(ijkToRas)
        np.testing.assert_allclose(volume.affine, shift @ slicer.util.arrayFromVTKMatrix(ijkToRas), atol=1e-9)
        self.assertIsNone(image)
        self.assertEqual(record["input_transform"]["name"], "shift")
        self.assertEqual(record["input_transform"]["matrix_to_world"], shift.tolist())
        self.delayDisplay("Export passed")

    def test_ResultNodesAndViews(self):
        """Result nodes: one set per input (a re-run replaces them), a per-slice summary table, and the views."""
        from DENExtractorLib import ExtractionResult
        from DENExtractorLib.extraction.result import pooled_vector

        self.delayDisplay("Adding result nodes twice")
        labelMap, _data = self._syntheticLabelMap()
        features = np.random.default_rng(0).random((48, 4096), dtype=np.float32)
        rows = np.arange(12, 27)
        result = ExtractionResult(features, rows, pooled_vector(features, rows), {})
        first = results.add_results_to_scene(result, slicer.mrmlScene, labelMap)
        count = slicer.mrmlScene.GetNumberOfNodes()
        second = results.add_results_to_scene(result, slicer.mrmlScene, labelMap)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.assertIsNone(slicer.mrmlScene.GetNodeByID(first.heatmap.GetID()))
        self.assertEqual(second.table.GetNumberOfColumns(), 4)
        self.assertEqual(second.table.GetNumberOfRows(), 48)
        self.assertIsNotNone(checks.image_problem(second.heatmap, labelMap))
        viewsBefore = views.show_results(second)
        if viewsBefore is not None:
            views.restore_views(viewsBefore)
        self.delayDisplay("Result nodes passed")

    def test_GoldenFeatures(self):
        """Extraction in Slicer (in the worker) gives the pinned features of the synthetic segmentation."""
        self.delayDisplay("Extracting features of a synthetic segmentation")
        self._requireWorkerPackages()
        golden = golden_values()
        labelMap, _data = self._syntheticLabelMap()
        outputFolder = Path(slicer.app.temporaryPath) / "DENExtractorTest"
        calls = []
        outcome = DENExtractorLogic().process(
            labelMap, outputFolder=outputFolder, progress=lambda *call: calls.append(call)
        )
        features = outcome.result.features
        self.assertEqual(list(features.shape), golden["features_shape"])
        self.assertEqual(list(outcome.result.foreground_rows), golden["foreground_rows"])
        tolerance = golden["relative_tolerance"]
        for row, column, expected in golden["features"]:
            self.assertTrue(
                math.isclose(float(features[row, column]), expected, rel_tol=tolerance, abs_tol=1e-7),
                f"feature [{row}, {column}] is {float(features[row, column])!r}, pinned {expected!r}",
            )
        total = float(features.astype(np.float64).sum())
        self.assertTrue(math.isclose(total, golden["feature_sum"], rel_tol=tolerance))
        self.assertTrue(calls and calls[-1][0] == calls[-1][1])
        for kind, path in outcome.paths.items():
            self.assertTrue(Path(path).is_file(), f"{kind} output {path} was not written")
        self.delayDisplay("Golden features passed")

    def test_Cancel(self):
        """A cancelled extraction (while the worker runs the network) writes nothing and adds no node."""
        self.delayDisplay("Cancelling an extraction")
        self._requireWorkerPackages()
        labelMap, _data = self._syntheticLabelMap()
        outputFolder = Path(slicer.app.temporaryPath) / "DENExtractorTestCancel"
        before = slicer.mrmlScene.GetNumberOfNodes()
        polls = []
        with self.assertRaises(ExtractionCancelled):
            DENExtractorLogic().process(
                labelMap, outputFolder=outputFolder, progress=lambda *call: polls.append(call),
                cancel=lambda: bool(polls),
            )
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before)
        self.assertFalse(outputFolder.exists() and any(outputFolder.iterdir()))
        self.delayDisplay("Cancel passed")
