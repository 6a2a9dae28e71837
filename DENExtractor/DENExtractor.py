"""DEN Extractor: a 3D Slicer module that extracts deep (DEN) features from a glioblastoma segmentation.

The widget only wires the GUI to the parameter node and to the logic; the work is done by the ``DENExtractorSlicer``
package beside this file (MRML nodes in; features, files and result nodes out) over the Slicer-free core
``DENExtractorLib``. Loading this file imports neither TensorFlow nor any package Slicer does not bundle: those are
needed (and, with the user's consent, installed) only for the first extraction.
"""

import logging
import math
from pathlib import Path
from typing import Annotated, Union

import DENExtractorSlicer
import numpy as np
import qt
import slicer
import vtk
from DENExtractorLib import MODES, PLANES, DENError, ExtractionCancelled
from DENExtractorSlicer import checks, install, sample, views
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

    inputSegmentation: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
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
        self._running = False
        self._cancelRequested = False
        self._resultFolder = None
        self._viewsBeforeResults = None

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

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndSaveEvent, self.onSceneSavedOrImported)
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
        """Called when the application closes and the module widget is destroyed."""
        self._cancelRequested = True
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: stop a running extraction and drop the parameter node."""
        self._cancelRequested = True
        self._viewsBeforeResults = None
        self.ui.restoreViewsButton.enabled = False
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneSavedOrImported(self, caller, event) -> None:
        """A saved or loaded scene has a folder that can take the results: check the inputs again."""
        self._checkCanApply()

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
        self.ui.segmentsLabel.visible = isSegmentation
        self.ui.segmentSelector.visible = isSegmentation
        chosen = checks.segments_to_choose(node, list(self._parameterNode.segmentIds))
        with _SignalsBlocked(self.ui.segmentSelector):
            self.ui.segmentSelector.setCurrentNode(node if isSegmentation else None)
            self.ui.segmentSelector.setSelectedSegmentIDs(chosen)
        if isSegmentation and list(self._parameterNode.segmentIds) != chosen:
            self._parameterNode.segmentIds = chosen

    def _checkCanApply(self) -> None:
        """Enable "Extract Features" only for valid inputs; otherwise say what is wrong in the status line.

        The message is the one the run itself would raise (:func:`DENExtractorSlicer.checks.inputs_problem`).
        """
        if self._running:
            return
        problem = self._inputsProblem()
        self.ui.applyButton.enabled = problem is None
        self.ui.applyButton.toolTip = problem or _("Extract the DEN features of every slice of the segmentation.")
        self.ui.statusLabel.text = problem or _("Ready.")

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
            scene_has_url=bool(slicer.mrmlScene.GetURL()),
        )
        return None if problem is None else str(problem)

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
        """Add the synthetic glioblastoma segmentation to the scene and make it the input."""
        with slicer.util.tryWithErrorDisplay(_("The sample could not be created."), waitCursor=True):
            node = sample.add_sample_segmentation(slicer.mrmlScene)
            if self._parameterNode:
                self._parameterNode.inputSegmentation = node

    def onApplyButton(self) -> None:
        """Install the requirements if needed (with consent), then extract, show and save the features."""
        if self._running or not install.ensure_requirements():
            self._checkCanApply()
            return

        parameters = self._parameterNode
        outcome = None
        failure = None
        self._setRunning(True)
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed unexpectedly."), waitCursor=False):
            try:
                self.ui.statusLabel.text = _("Loading the network (the first run takes longer)...")
                slicer.app.processEvents()
                outcome = self.logic.process(
                    parameters.inputSegmentation,
                    segmentIds=self._chosenSegmentIds(),
                    imageNode=parameters.imageVolume,
                    mode=parameters.mode,
                    plane=parameters.plane,
                    weightsPath=None if parameters.useBundledWeights else parameters.weightsPath,
                    outputFolder=parameters.outputFolder,
                    progress=self._onProgress,
                    cancel=lambda: self._cancelRequested,
                )
            except ExtractionCancelled:
                status = _("Cancelled: nothing was written.")
            except DENError as error:
                status = failure = str(error)
            except Exception:
                status = _("Feature extraction failed unexpectedly; see the error details.")
                raise
            else:
                status = ""
            finally:
                self._setRunning(False)
                self.ui.statusLabel.text = status
        if failure is not None:
            slicer.util.errorDisplay(failure, windowTitle=_("DEN Extractor"))
        if outcome is not None:
            self._showOutcome(outcome)

    def _onProgress(self, done: int, total: int) -> None:
        """Show the progress and keep the GUI responsive, so that Cancel can be clicked."""
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done
        if not self._cancelRequested:
            self.ui.statusLabel.text = _("Computing features: {done} of {total}...").format(done=done, total=total)
        slicer.app.processEvents()

    def onCancelButton(self) -> None:
        """Ask the running extraction to stop at the next slice batch."""
        self._cancelRequested = True
        self.ui.cancelButton.enabled = False
        self.ui.statusLabel.text = _("Cancelling...")

    def _setRunning(self, running: bool) -> None:
        """Lock the inputs while an extraction runs; only Cancel stays active."""
        self._running = running
        self._cancelRequested = False
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
        self.ui.progressBar.value = self.ui.progressBar.maximum
        rows, features = result.features.shape
        message = _("Done: {rows} slices x {features} features, {foreground} of them with tumour.")
        self.ui.statusLabel.text = message.format(rows=rows, features=features, foreground=len(result.foreground_rows))
        paths = outcome.paths
        self._resultFolder = paths["npy"].parent
        self.ui.outputPathLabel.text = str(paths["npy"])
        self.ui.outputPathLabel.toolTip = "\n".join(str(path) for path in paths.values())
        self.ui.openFolderButton.enabled = True
        viewsBefore = views.show_results(outcome.nodes)
        if self._viewsBeforeResults is None:
            self._viewsBeforeResults = viewsBefore
        self.ui.restoreViewsButton.enabled = self._viewsBeforeResults is not None

    def onRestoreViewsButton(self) -> None:
        """Give back the layout and Red view the user had before the first results were shown."""
        if self._viewsBeforeResults is not None:
            views.restore_views(self._viewsBeforeResults)
            self._viewsBeforeResults = None
        self.ui.restoreViewsButton.enabled = False

    def onOpenFolderButton(self) -> None:
        """Open the folder of the last results in the system's file browser."""
        if self._resultFolder is not None:
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self._resultFolder)))


class _SignalsBlocked:
    """Context manager that blocks the Qt signals of some widgets, so that GUI updates do not loop back."""

    def __init__(self, *widgets) -> None:
        self._widgets = widgets
        self._previous = []

    def __enter__(self) -> None:
        self._previous = [widget.blockSignals(True) for widget in self._widgets]

    def __exit__(self, *exception) -> None:
        for widget, previous in zip(self._widgets, self._previous):
            widget.blockSignals(previous)


#
# DENExtractorLogic
#


class DENExtractorLogic(ScriptedLoadableModuleLogic):
    """The module's logic, usable without the GUI; it delegates to ``DENExtractorSlicer.process``.

    Example (Slicer's Python console)::

        import DENExtractor
        logic = DENExtractor.DENExtractorLogic()
        outcome = logic.process(getNode("Segmentation"), outputFolder="/tmp/den")
        outcome.result.features.shape  # (slices, 4096)
        outcome.paths["npy"]           # /tmp/den/Segmentation_den.npy
    """

    def getParameterNode(self) -> DENExtractorParameterNode:
        """Return the module's parameter node in the scene, wrapped with typed access."""
        return DENExtractorParameterNode(super().getParameterNode())

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

        :param inputNode: a ``vtkMRMLSegmentationNode`` or ``vtkMRMLLabelMapVolumeNode``.
        :param segmentIds: the segments of a segmentation node to use; None uses all of them.
        :param imageNode: optional ``vtkMRMLScalarVolumeNode`` on the same grid, fed instead of the label values.
        :param mode: "reference" or "oriented".
        :param plane: "axial", "coronal" or "sagittal" (oriented mode).
        :param weightsPath: a weights file; None (or empty) uses the bundled reference weights.
        :param outputFolder: where to save the results; None (or empty) uses the saved scene's folder.
        :param progress: ``progress(done, total)`` called as slices are computed.
        :param cancel: ``cancel()`` polled between slice batches; returning True stops with ExtractionCancelled.
        :return: ``DENExtractorSlicer.ProcessOutcome`` (``.result``, ``.nodes``, ``.paths``).
        :raises DENExtractorLib.DENError: for any fault in the inputs or settings (one-line message).
        """
        return DENExtractorSlicer.process(
            inputNode,
            segment_ids=segmentIds,
            image_node=imageNode,
            mode=mode,
            plane=plane,
            weights=weightsPath,
            output_folder=outputFolder,
            progress=progress,
            cancel=cancel,
            scene=slicer.mrmlScene,
        )


#
# DENExtractorTest
#

GOLDEN_SHAPE = (48, 40, 24)
"""Shape (i, j, k) of the synthetic segmentation of the self-test."""

GOLDEN_SEED = 7
"""Seed of the synthetic segmentation of the self-test."""

GOLDEN_FEATURES_SHAPE = (48, 4096)
GOLDEN_FOREGROUND_ROWS = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]
GOLDEN_FEATURES = {
    (0, 1313): 0.0,
    (12, 2188): 0.02279604,
    (19, 1313): 0.06157549,
    (19, 2188): 0.06121341,
    (26, 1313): 0.02372364,
}
GOLDEN_FEATURE_SUM = 286.2693
"""Pinned features of the synthetic segmentation (bundled weights, reference mode), computed by the core with
``DENExtractorLib.extract(segmentation_from_array(data, affine, "synthetic"))``: Slicer must give the same numbers."""

GOLDEN_RELATIVE_TOLERANCE = 1e-4


class DENExtractorTest(ScriptedLoadableModuleTest):
    """The module's self-test, run inside Slicer (Reload and Test, or ``--testing``).

    Slicer's ``runTest`` runs every ``test_*`` method, each after :meth:`setUp`. Under ``--testing`` (the
    extensions factory's ctest) Slicer installs no package: where TensorFlow is missing, the extraction tests
    say so and stop without extracting, and the input-check and sample tests still run.
    """

    def setUp(self):
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def _syntheticLabelMap(self):
        from DENExtractorLib import demo

        data, affine = demo.synthetic_glioblastoma(shape=GOLDEN_SHAPE, seed=GOLDEN_SEED)
        # DENExtractorLib arrays are (i, j, k); Slicer's volume arrays are (k, j, i).
        return slicer.util.addVolumeFromArray(
            np.ascontiguousarray(np.transpose(data, (2, 1, 0))),
            ijkToRAS=np.asarray(affine, dtype=float),
            name="synthetic",
            nodeClassName="vtkMRMLLabelMapVolumeNode",
        )

    def _requirementsMet(self) -> bool:
        """Whether extraction can run; in testing mode nothing is installed, so a missing package stops here."""
        missing = install.unmet(install.requirements())
        if missing and slicer.app.testingEnabled():
            message = "Not extracting: {} not installed, and Slicer installs nothing in testing mode.".format(
                ", ".join(str(requirement) for requirement in missing)
            )
            logging.warning(message)
            self.delayDisplay(message)
            return False
        self.assertTrue(install.ensure_requirements(), "the extraction packages could not be installed")
        return True

    def test_InputsProblem(self):
        """The Extract button's check (the run's own) accepts a label map and refuses missing inputs."""
        self.delayDisplay("Checking input validation")
        labelMap = self._syntheticLabelMap()
        folder = slicer.app.temporaryPath
        self.assertIsNone(checks.inputs_problem(labelMap, output_folder=folder))
        self.assertEqual(str(checks.inputs_problem(None)), "input: choose a segmentation or a label map volume")
        self.assertIn("no output folder was chosen", str(checks.inputs_problem(labelMap)))
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

    def test_GoldenFeatures(self):
        """Extraction in Slicer gives the pinned features of the synthetic segmentation and saves every output."""
        self.delayDisplay("Extracting features of a synthetic segmentation")
        if not self._requirementsMet():
            return
        logic = DENExtractorLogic()
        labelMap = self._syntheticLabelMap()
        outputFolder = Path(slicer.app.temporaryPath) / "DENExtractorTest"
        calls = []
        outcome = logic.process(labelMap, outputFolder=outputFolder, progress=lambda *call: calls.append(call))

        features = outcome.result.features
        self.assertEqual(features.shape, GOLDEN_FEATURES_SHAPE)
        self.assertEqual(list(outcome.result.foreground_rows), GOLDEN_FOREGROUND_ROWS)
        for (row, column), expected in GOLDEN_FEATURES.items():
            self.assertTrue(
                math.isclose(float(features[row, column]), expected, rel_tol=GOLDEN_RELATIVE_TOLERANCE, abs_tol=1e-7),
                f"feature [{row}, {column}] is {float(features[row, column])!r}, pinned {expected!r}",
            )
        total = float(features.astype(np.float64).sum())
        self.assertTrue(
            math.isclose(total, GOLDEN_FEATURE_SUM, rel_tol=GOLDEN_RELATIVE_TOLERANCE),
            f"feature sum {total!r}, pinned {GOLDEN_FEATURE_SUM!r}",
        )
        self.assertTrue(calls and calls[-1][0] == calls[-1][1])
        for kind, path in outcome.paths.items():
            self.assertTrue(Path(path).is_file(), f"{kind} output {path} was not written")
        viewsBefore = views.show_results(outcome.nodes)
        if viewsBefore is not None:
            views.restore_views(viewsBefore)
        self.delayDisplay("Golden features passed")

    def test_Cancel(self):
        """A cancelled extraction raises ExtractionCancelled and writes nothing."""
        from DENExtractorLib import ExtractionCancelled

        self.delayDisplay("Cancelling an extraction")
        if not self._requirementsMet():
            return
        logic = DENExtractorLogic()
        labelMap = self._syntheticLabelMap()
        outputFolder = Path(slicer.app.temporaryPath) / "DENExtractorTestCancel"
        with self.assertRaises(ExtractionCancelled):
            logic.process(labelMap, outputFolder=outputFolder, cancel=lambda: True)
        self.assertFalse(outputFolder.exists() and any(outputFolder.iterdir()))
        self.delayDisplay("Cancel passed")
