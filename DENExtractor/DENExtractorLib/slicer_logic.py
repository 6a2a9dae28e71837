"""DENExtractor inside 3D Slicer, without Qt: MRML nodes in; DEN features, output files and result nodes out.

The arrays handed to the core are exactly what ``den-extract`` reads from the same file, so a file gives the same
features in Slicer and on the command line:

* voxel arrays are transposed from VTK's (k, j, i) to nibabel's (i, j, k) order, with the node's IJK-to-RAS matrix
  as the affine (the node's own geometry; parent transforms are not applied, as a file knows nothing of them);
* a segmentation keeps each segment's own label value (the value it has in its source labelmap, e.g. the label
  it had in the file it was loaded from), instead of the 1..N a plain "export to label map" would give;
* a segmentation is exported onto its reference image geometry (the grid it was loaded or drawn on), or onto the
  intensity volume's grid in image mode, so the label map has the original file's shape.

Imports only ``slicer``, ``vtk``, numpy and DENExtractorLib; TensorFlow is imported by the core when a network is
built. Works in the Slicer application and with the MRML libraries of the ``slicer-core`` package.

Example (Slicer Python console)::

    from DENExtractorLib import slicer_logic
    outcome = slicer_logic.process(getNode("OTMultiClass"), output_folder="/tmp/den")
    outcome.paths["npy"]             # /tmp/den/OTMultiClass_den.npy
    slicer_logic.show_heatmap(outcome.nodes)
"""

from __future__ import annotations

import importlib.util
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVTKMatrix, updateVolumeFromArray, vtkMatrixFromArray
from vtk.util import numpy_support

from . import DENError, ExtractionResult, Volume, extract, image_from_array, segmentation_from_array, write_outputs
from .module_state import LABELMAP_CLASS, SEGMENTATION_CLASS, chosen_path, segment_ids_of
from .volume import distinct_label_values

VIRIDIS_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileViridis.txt"
"""ID of Slicer's Viridis colour table node (loaded by the Colors module from ``ColorFiles/Viridis.txt``)."""

VIRIDIS_ANCHORS = (
    (0.2670, 0.0049, 0.3294), (0.2823, 0.0950, 0.4173), (0.2788, 0.1755, 0.4834), (0.2590, 0.2515, 0.5247),
    (0.2297, 0.3224, 0.5457), (0.1994, 0.3876, 0.5546), (0.1727, 0.4488, 0.5579), (0.1490, 0.5081, 0.5572),
    (0.1276, 0.5669, 0.5506), (0.1201, 0.6222, 0.5349), (0.1539, 0.6802, 0.5042), (0.2394, 0.7356, 0.4557),
    (0.3607, 0.7860, 0.3878), (0.5063, 0.8288, 0.3004), (0.6681, 0.8620, 0.1963), (0.8353, 0.8860, 0.1026),
    (0.9932, 0.9062, 0.1439),
)
"""Viridis at 17 evenly spaced points, for scenes without Slicer's colour files (``slicer-core``)."""

HEATMAP_LAYOUT = slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
"""Layout showing the heatmap (Red slice view), the chart (plot view) and the feature table (table view)."""

HEATMAP_SLICE_VIEW = "Red"
HEATMAP_ASPECT = 2.0
"""Width / height of the heatmap as shown in a slice view, whatever the number of slices."""

SLICE_COLUMN = "slice"
FOREGROUND_COLUMN = "foreground"
MEAN_COLUMN = "mean activation"

MEAN_SERIES_COLOR = (0.17, 0.45, 0.70)
FEATURE_SERIES_COLOR = (0.90, 0.50, 0.10)

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclass
class ResultNodes:
    """The MRML nodes showing one extraction.

    ``table``: one row per slice: ``slice``, ``foreground``, ``mean activation``, then ``feature_0`` ...
    ``feature_4095``;
    ``pooled_table``: one row per feature (``feature``, ``mean``, ``max`` over the foreground slices);
    ``chart``: per-slice mean activation and the most variable feature, against the slice index;
    ``heatmap``: scalar volume of slices x features, one voxel thick, shown with Viridis.
    """

    table: Any
    pooled_table: Any
    chart: Any
    heatmap: Any


@dataclass
class ProcessOutcome:
    """What :func:`process` produced: the core's result, the nodes added to the scene and the files written."""

    result: ExtractionResult
    nodes: ResultNodes
    paths: dict[str, Path]


@dataclass(frozen=True)
class ViewPlan:
    """Which layout and views show a result: decided without the application, applied by :func:`show_heatmap`."""

    layout: int
    slice_view: str
    volume_id: str
    chart_id: str
    table_id: str


# --- nodes to volumes -------------------------------------------------------------------------------------------


def volume_from_labelmap_node(labelmap_node: Any) -> Volume:
    """Return a label map volume node's voxels as a validated segmentation :class:`Volume` (label values as stored)."""
    data, affine = _node_arrays(labelmap_node)
    return segmentation_from_array(data, affine, labelmap_node.GetName())


def volume_from_scalar_node(volume_node: Any) -> Volume:
    """Return a scalar volume node's voxels as a validated intensity :class:`Volume` (for image mode)."""
    data, affine = _node_arrays(volume_node)
    return image_from_array(data, affine, volume_node.GetName())


def volume_from_segmentation_node(
    segmentation_node: Any, segment_ids: Sequence[str] | None = None, reference_volume_node: Any = None
) -> Volume:
    """Return a segmentation node's segments as one validated label map :class:`Volume`.

    :param segmentation_node: a ``vtkMRMLSegmentationNode``.
    :param segment_ids: the segments to include, in order; None means all of them.
    :param reference_volume_node: a volume whose grid the label map is exported onto; None means the
        segmentation's reference image geometry (the grid of the file it was loaded from, or of the volume it was
        drawn on), or, when it has none, the smallest box holding the segments.
    :return: the label map with each segment's label value (see :func:`segment_label_values`).
    :raises DENError: for unknown or empty segments, or voxels claimed by two chosen segments (overlapping layers).
    """
    segment_ids = chosen_segment_ids(segmentation_node, segment_ids)
    values = segment_label_values(segmentation_node, segment_ids)
    labelmap = _merged_labelmap_node(segmentation_node, segment_ids, values, reference_volume_node)
    if labelmap is None:
        raise DENError(segmentation_node.GetName(), "the chosen segments are empty: nothing to extract")
    data, affine = _node_arrays(labelmap)
    _refuse_overlaps(segmentation_node, segment_ids, values, labelmap, data.shape)
    return segmentation_from_array(data, affine, _segmentation_source(segmentation_node, segment_ids))


def chosen_segment_ids(segmentation_node: Any, segment_ids: Sequence[str] | None) -> list[str]:
    """Return the segment IDs to export: all segments for None, else the given ones after checking they exist."""
    available = segment_ids_of(segmentation_node)
    name = segmentation_node.GetName()
    if segment_ids is None:
        if not available:
            raise DENError(name, "the segmentation has no segments")
        return available
    chosen = list(segment_ids)
    if not chosen:
        raise DENError(name, "no segment chosen: choose at least one segment")
    unknown = [segment_id for segment_id in chosen if segment_id not in available]
    if unknown:
        raise DENError(name, f"no segment with ID {unknown[0]!r} in this segmentation")
    return chosen


def segment_label_values(segmentation_node: Any, segment_ids: Sequence[str]) -> list[int]:
    """Return the label value each segment gets in the exported label map.

    Each segment keeps its own label value: its value in its source labelmap, i.e. the label it had in the label
    map or ``.seg.nrrd`` file it was loaded from; clashes are resolved by :func:`distinct_label_values`, the rule
    the command line applies to ``.seg.nrrd`` files.
    """
    segmentation = segmentation_node.GetSegmentation()
    return distinct_label_values([int(segmentation.GetSegment(segment_id).GetLabelValue()) for segment_id in segment_ids])


def _merged_labelmap_node(
    segmentation_node: Any, segment_ids: Sequence[str], values: Sequence[int], reference: Any
) -> Any | None:
    """Merge segments into a label map volume node outside any scene, on ``reference``'s grid or the segmentation's.

    Returns None when the segments hold no voxels at all.
    """
    name = segmentation_node.GetName()
    segmentation = segmentation_node.GetSegmentation()
    if not segmentation.CreateRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()):
        raise DENError(name, "the segments cannot be converted to a binary labelmap")
    merged = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GenerateMergedLabelmapInReferenceGeometry(
        segmentation_node,
        reference,
        _string_array(segment_ids),
        slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
        merged,
        _int_array(values),
    )
    if merged.IsEmpty():
        return None
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    labelmap.SetName(name)
    if not slicer.vtkSlicerSegmentationsModuleLogic.CreateLabelmapVolumeFromOrientedImageData(merged, labelmap):
        raise DENError(name, "the segments could not be exported to a label map")
    return labelmap


def _refuse_overlaps(
    segmentation_node: Any, segment_ids: Sequence[str], values: Sequence[int], grid: Any, shape: tuple[int, ...]
) -> None:
    """Raise :class:`DENError` when chosen segments in different layers share voxels (one would hide the other).

    ``grid`` is the merged label map node (its geometry is reused for each layer) and ``shape`` its array shape.
    """
    segmentation = segmentation_node.GetSegmentation()
    layers: dict[int, list[int]] = {}
    for index, segment_id in enumerate(segment_ids):
        layers.setdefault(segmentation.GetLayerIndex(segment_id), []).append(index)
    if len(layers) < 2:
        return
    claimed = np.zeros(shape, dtype=np.uint16)
    for indices in layers.values():
        layer = _merged_labelmap_node(
            segmentation_node, [segment_ids[i] for i in indices], [values[i] for i in indices], grid
        )
        if layer is not None:
            claimed += _node_arrays(layer)[0] != 0
    overlapping = int(np.count_nonzero(claimed > 1))
    if overlapping:
        raise DENError(
            segmentation_node.GetName(),
            f"{overlapping} voxels belong to more than one of the chosen segments (overlapping layers); "
            "DEN needs one label per voxel: choose segments that do not overlap",
        )


def _segmentation_source(segmentation_node: Any, segment_ids: Sequence[str]) -> str:
    """Name the segmentation in messages and provenance, with the chosen segments when not all were chosen."""
    name = segmentation_node.GetName()
    if list(segment_ids) == segment_ids_of(segmentation_node):
        return name
    segmentation = segmentation_node.GetSegmentation()
    names = ", ".join(segmentation.GetSegment(segment_id).GetName() for segment_id in segment_ids)
    return f"{name} [segments: {names}]"


def _node_arrays(volume_node: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return a volume node's voxels in nibabel's (i, j, k) order (a copy) and its IJK-to-RAS matrix (4x4)."""
    name = volume_node.GetName()
    image = volume_node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0 or image.GetPointData().GetScalars() is None:
        raise DENError(name, "the volume has no voxels")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise DENError(name, f"the volume has {components} values per voxel: a single-component volume is needed")
    columns, rows, slices = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    data = np.array(scalars.reshape(slices, rows, columns).transpose(2, 1, 0))
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return data, np.array(arrayFromVTKMatrix(matrix), dtype=np.float64)


def _string_array(values: Sequence[str]) -> vtk.vtkStringArray:
    """Return ``values`` as a VTK string array."""
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array


def _int_array(values: Sequence[int]) -> vtk.vtkIntArray:
    """Return ``values`` as a VTK int array."""
    array = vtk.vtkIntArray()
    for value in values:
        array.InsertNextValue(int(value))
    return array


# --- output folder ----------------------------------------------------------------------------------------------


def scene_output_folder(scene: Any, fallback_folder: str | None) -> Path:
    """Return the folder results are written to: the saved scene's folder, else ``fallback_folder``.

    :raises DENError: when the scene has never been saved (no URL) and no fallback folder is given; results are
        never written to a temporary folder the user did not choose.
    """
    url = scene.GetURL() if scene is not None else ""
    if url:
        return Path(url).resolve().parent
    fallback = chosen_path(fallback_folder)
    if fallback is not None:
        return fallback
    raise DENError(
        "output folder", "the scene has not been saved and no output folder was chosen: choose an output folder"
    )


def output_stem(node_name: str) -> str:
    """Return a node name as a safe file-name stem: ``"pat 1/OT"`` -> ``"pat_1_OT"``."""
    stem = re.sub(r"[^\w.-]+", "_", node_name).strip("._")
    return stem or "segmentation"


# --- result nodes -----------------------------------------------------------------------------------------------


def feature_column_name(index: int) -> str:
    """Return the feature table's column name of feature ``index``: ``feature_0`` ... ``feature_4095``."""
    return f"feature_{index}"


def feature_table_columns(result: ExtractionResult) -> dict[str, np.ndarray]:
    """Return the per-slice table's columns: slice index, foreground flag, mean activation, then every feature."""
    features = result.features
    foreground = np.zeros(features.shape[0], dtype=np.uint8)
    foreground[result.foreground_rows] = 1
    columns = {
        SLICE_COLUMN: np.arange(features.shape[0], dtype=np.int32),
        FOREGROUND_COLUMN: foreground,
        MEAN_COLUMN: features.mean(axis=1, dtype=np.float64).astype(np.float32),
    }
    columns.update({feature_column_name(index): features[:, index] for index in range(features.shape[1])})
    return columns


def pooled_table_columns(result: ExtractionResult) -> dict[str, np.ndarray]:
    """Return the pooled table's columns: feature index, mean and max over the foreground slices."""
    count = result.features.shape[1]
    return {
        "feature": np.arange(count, dtype=np.int32),
        "mean": result.pooled[:count],
        "max": result.pooled[count:],
    }


def most_variable_feature(features: np.ndarray) -> int:
    """Return the index of the feature whose value varies most over the slices (the first one on ties)."""
    return int(np.argmax(features.var(axis=0, dtype=np.float64)))


def heatmap_ijk_to_ras(row_count: int, feature_count: int) -> np.ndarray:
    """Return the heatmap's IJK-to-RAS matrix: in an axial view features run left to right and slices top down.

    Rows are stretched so that the heatmap is shown :data:`HEATMAP_ASPECT` times wider than tall.
    """
    row_spacing = feature_count / (HEATMAP_ASPECT * row_count)
    return np.diag([-1.0, -row_spacing, 1.0, 1.0])


def viridis_color_node_id(scene: Any) -> str:
    """Return the ID of Slicer's Viridis colour table, adding an equivalent node to scenes that lack it.

    The Slicer application always has it; a ``slicer-core`` scene has no colour files, so a Viridis table with the
    same node ID is built from :data:`VIRIDIS_ANCHORS`.
    """
    if scene.GetNodeByID(VIRIDIS_COLOR_NODE_ID) is None:
        scene.AddNode(_viridis_color_node())
    return VIRIDIS_COLOR_NODE_ID


def _viridis_color_node() -> Any:
    """A 256-entry Viridis colour table node whose singleton tag gives it Slicer's Viridis node ID."""
    node = slicer.vtkMRMLColorTableNode()
    node.SetSingletonTag(slicer.vtkMRMLColorLogic.GetFileColorNodeSingletonTag("Viridis.txt"))
    node.SetName("Viridis")
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    anchors = np.asarray(VIRIDIS_ANCHORS)
    positions = np.linspace(0.0, 1.0, len(anchors))
    for index, position in enumerate(np.linspace(0.0, 1.0, 256)):
        red, green, blue = (np.interp(position, positions, anchors[:, channel]) for channel in range(3))
        node.SetColor(index, f"{index}", red, green, blue, 1.0)
    node.NamesInitialisedOn()
    return node


def add_results_to_scene(result: ExtractionResult, scene: Any, base_name: str) -> ResultNodes:
    """Add the feature tables, the chart and the heatmap of ``result`` to ``scene``, named after ``base_name``.

    Either every node is added or, if anything fails, none is left behind.
    """
    before = {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}
    try:
        table = _add_table(scene, f"{base_name} DEN features", feature_table_columns(result))
        pooled_table = _add_table(scene, f"{base_name} DEN pooled", pooled_table_columns(result))
        chart = _add_chart(scene, base_name, table, most_variable_feature(result.features))
        heatmap = _add_heatmap(scene, f"{base_name} DEN heatmap", result.features)
    except BaseException:
        _remove_nodes_added_since(scene, before)
        raise
    return ResultNodes(table=table, pooled_table=pooled_table, chart=chart, heatmap=heatmap)


def _add_table(scene: Any, name: str, columns: dict[str, np.ndarray]) -> Any:
    """Add a table node holding ``columns`` (name -> 1-D array), in order."""
    table = vtk.vtkTable()
    for column_name, values in columns.items():
        array = numpy_support.numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        array.SetName(column_name)
        table.AddColumn(array)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    node.SetAndObserveTable(table)
    return node


def _add_chart(scene: Any, base_name: str, table: Any, feature_index: int) -> Any:
    """Add a chart plotting the mean activation and feature ``feature_index`` of ``table`` against the slice."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(f"{base_name} DEN chart"))
    chart.SetTitle(f"DEN features of {base_name}")
    chart.SetXAxisTitle("slice")
    chart.SetYAxisTitle("activation")
    for column, color in ((MEAN_COLUMN, MEAN_SERIES_COLOR), (feature_column_name(feature_index), FEATURE_SERIES_COLOR)):
        label = column if column == MEAN_COLUMN else f"feature {feature_index} (most variable)"
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{base_name} {label}"))
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName(SLICE_COLUMN)
        series.SetYColumnName(column)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeLine)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        series.SetColor(*color)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def _add_heatmap(scene: Any, name: str, features: np.ndarray) -> Any:
    """Add a one-voxel-thick scalar volume of ``features`` (rows x features) shown with Viridis."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    updateVolumeFromArray(node, np.ascontiguousarray(features, dtype=np.float32)[np.newaxis])
    node.SetIJKToRASMatrix(vtkMatrixFromArray(heatmap_ijk_to_ras(*features.shape)))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(viridis_color_node_id(scene))
    display.AutoWindowLevelOn()
    return node


def _remove_nodes_added_since(scene: Any, before: set[str]) -> None:
    """Remove the nodes whose IDs are not in ``before``, newest first."""
    added = [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]
    for node in reversed([node for node in added if node.GetID() not in before]):
        scene.RemoveNode(node)


# --- views ------------------------------------------------------------------------------------------------------


def heatmap_view_plan(result_nodes: ResultNodes) -> ViewPlan:
    """Return the layout and the nodes :func:`show_heatmap` puts in the slice, plot and table views."""
    return ViewPlan(
        layout=HEATMAP_LAYOUT,
        slice_view=HEATMAP_SLICE_VIEW,
        volume_id=result_nodes.heatmap.GetID(),
        chart_id=result_nodes.chart.GetID(),
        table_id=result_nodes.table.GetID(),
    )


def show_heatmap(result_nodes: ResultNodes) -> bool:
    """Switch to a layout showing the heatmap, the chart and the feature table; return whether it did.

    Only the Slicer application has views: without it (``slicer-core``, or an application without a main window)
    nothing is changed and False is returned.
    """
    app = getattr(slicer, "app", None)
    layout_manager = app.layoutManager() if app is not None else None
    if layout_manager is None:
        return False
    plan = heatmap_view_plan(result_nodes)
    layout_manager.setLayout(plan.layout)
    slice_logic = layout_manager.sliceWidget(plan.slice_view).sliceLogic()
    slice_logic.GetSliceNode().SetOrientationToAxial()
    slice_logic.GetSliceCompositeNode().SetBackgroundVolumeID(plan.volume_id)
    slice_logic.FitSliceToAll()
    application_logic = app.applicationLogic()
    selection = application_logic.GetSelectionNode()
    selection.SetActivePlotChartID(plan.chart_id)
    application_logic.PropagatePlotChartSelection()
    selection.SetActiveTableID(plan.table_id)
    application_logic.PropagateTableSelection()
    return True


# --- the whole run ----------------------------------------------------------------------------------------------


def process(
    input_node: Any,
    *,
    segment_ids: Sequence[str] | None = None,
    image_node: Any = None,
    mode: str = "reference",
    plane: str = "axial",
    weights: str | Path | None = None,
    output_folder: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    scene: Any = None,
) -> ProcessOutcome:
    """Extract the DEN features of a segmentation or label map node, save them and add result nodes to the scene.

    :param input_node: a ``vtkMRMLSegmentationNode`` or a ``vtkMRMLLabelMapVolumeNode``.
    :param segment_ids: segments of a segmentation to include (None: all); ignored for a label map.
    :param image_node: optional scalar volume for image mode; a segmentation is exported onto its grid.
    :param mode: ``"reference"`` (the published pipeline: slices along the first voxel axis) or ``"oriented"``.
    :param plane: ``"axial"``, ``"coronal"`` or ``"sagittal"`` (oriented mode).
    :param weights: a weights file; None uses the bundled reference weights.
    :param output_folder: where ``<input node name>_den.npy``, ``.json`` and ``.png`` are written; None or empty
        means the folder of the saved scene (see :func:`scene_output_folder`).
    :param progress: called as ``progress(done, total)`` while slices are computed.
    :param cancel: polled during the extraction; when it returns True, :class:`ExtractionCancelled` is raised and
        neither files nor nodes are created.
    :param scene: the scene receiving the result nodes; None means the input node's scene.
    :return: the result, the nodes added and the paths written.
    :raises DENError: with a one-line message for any bad input.

    Example (Slicer Python console)::

        from DENExtractorLib import slicer_logic
        segmentation = getNode("Segmentation")
        outcome = slicer_logic.process(segmentation, segment_ids=["Segment_1", "Segment_2"], output_folder="/tmp/den")
        outcome.result.features.shape    # (slices, 4096)
        outcome.paths["npy"]             # /tmp/den/Segmentation_den.npy
    """
    name = input_node.GetName()
    scene = scene if scene is not None else input_node.GetScene()
    if scene is None:
        raise DENError(name, "the node is not in a MRML scene")
    folder = chosen_path(output_folder) or scene_output_folder(scene, None)
    segmentation = _input_volume(input_node, segment_ids, image_node)
    image = volume_from_scalar_node(image_node) if image_node is not None else None
    result = extract(
        segmentation, image=image, mode=mode, plane=plane if mode == "oriented" else None, weights=weights,
        progress=progress, cancel=cancel,
    )
    paths = write_outputs(result, folder, output_stem(name))
    nodes = add_results_to_scene(result, scene, name)
    return ProcessOutcome(result=result, nodes=nodes, paths=paths)


def _input_volume(input_node: Any, segment_ids: Sequence[str] | None, image_node: Any) -> Volume:
    """Convert the input node to a segmentation :class:`Volume` (a segmentation onto the image's grid, if any)."""
    if input_node.IsA(SEGMENTATION_CLASS):
        return volume_from_segmentation_node(input_node, segment_ids, image_node)
    if input_node.IsA(LABELMAP_CLASS):
        return volume_from_labelmap_node(input_node)
    raise DENError(input_node.GetName(), "the input is neither a segmentation nor a label map volume")


# --- Python packages --------------------------------------------------------------------------------------------


def _requirements() -> dict[str, str]:
    """Module name -> pip requirement of each package the extraction imports that Slicer may lack."""
    tensorflow = "tensorflow>=2.16" if platform.system() == "Darwin" else "tensorflow-cpu>=2.16"
    return {
        "tensorflow": tensorflow,
        "keras": "keras>=3.0",
        "h5py": "h5py>=3.10",
        "nibabel": "nibabel>=5.1",
        "PIL": "pillow>=10.1",
        "matplotlib": "matplotlib>=3.8",
    }


def missing_dependencies() -> list[str]:
    """Return the pip package names of the needed packages that cannot be imported (none are imported here)."""
    return [_package_name(requirement) for requirement in pip_requirements()]


def pip_requirements() -> list[str]:
    """Return the requirement strings to pass to ``slicer.util.pip_install`` to add the missing packages."""
    return [requirement for module, requirement in _requirements().items() if not _importable(module)]


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _package_name(requirement: str) -> str:
    """The distribution name of a requirement: ``"keras>=3.0"`` -> ``"keras"``."""
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]
