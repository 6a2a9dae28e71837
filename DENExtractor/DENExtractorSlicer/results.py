"""The nodes that show one extraction in the scene: feature tables, a Plots chart and a Viridis heatmap volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer
import vtk
from DENExtractorLib import ExtractionResult
from slicer.util import updateVolumeFromArray, vtkMatrixFromArray
from vtk.util import numpy_support

from .checks import HEATMAP_ROLE, ROLE_ATTRIBUTE

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

HEATMAP_WIDTH_MM = 200.0
"""Width of the heatmap volume in the scene: a head's width, so a fitted slice view's ruler stays sensible."""

HEATMAP_ASPECT = 2.0
"""Width / height of the heatmap as shown in a slice view, whatever the number of slices."""

SLICE_COLUMN = "slice"
FOREGROUND_COLUMN = "foreground"
MEAN_COLUMN = "mean activation"

MEAN_SERIES_COLOR = (0.17, 0.45, 0.70)
FEATURE_SERIES_COLOR = (0.90, 0.50, 0.10)


INPUT_ATTRIBUTE = "DENExtractor.InputNodeID"
"""Node attribute holding the ID of the input node a result node belongs to: a re-run replaces those nodes."""


@dataclass
class ResultNodes:
    """The MRML nodes showing one extraction.

    ``table``: one row per slice: ``slice``, ``foreground``, ``mean activation`` and the most variable feature
    (a per-slice summary: the full slices x 4096 matrix stays in the ``.npy``);
    ``pooled_table``: one row per feature (``feature``, ``mean``, ``max`` over the foreground slices);
    ``chart``: per-slice mean activation and the most variable feature, against the slice index;
    ``heatmap``: scalar volume of slices x features, one voxel thick, shown with Viridis (not an MRI: the
    module's image selector and :func:`DENExtractorSlicer.checks.image_problem` refuse it).
    """

    table: Any
    pooled_table: Any
    chart: Any
    heatmap: Any


def feature_column_name(index: int) -> str:
    """Return the column name of feature ``index``: ``feature_0`` ... ``feature_4095``."""
    return f"feature_{index}"


def feature_table_columns(result: ExtractionResult, most_variable: int | None = None) -> dict[str, np.ndarray]:
    """Return the per-slice summary's columns: slice index, foreground flag, mean activation, most variable feature."""
    features = result.features
    foreground = np.zeros(features.shape[0], dtype=np.uint8)
    foreground[result.foreground_rows] = 1
    most_variable = most_variable_feature(features) if most_variable is None else most_variable
    return {
        SLICE_COLUMN: np.arange(features.shape[0], dtype=np.int32),
        FOREGROUND_COLUMN: foreground,
        MEAN_COLUMN: features.mean(axis=1, dtype=np.float64).astype(np.float32),
        feature_column_name(most_variable): features[:, most_variable],
    }


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

    The whole matrix measures :data:`HEATMAP_WIDTH_MM` by ``HEATMAP_WIDTH_MM / HEATMAP_ASPECT`` whatever its
    number of rows and features, so a slice view fitted to it shows all of it at a readable aspect.
    """
    column_spacing = HEATMAP_WIDTH_MM / feature_count
    row_spacing = HEATMAP_WIDTH_MM / (HEATMAP_ASPECT * row_count)
    return np.diag([-column_spacing, -row_spacing, 1.0, 1.0])


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
    return node


def result_nodes_of(scene: Any, input_id: str) -> list[Any]:
    """The result nodes an earlier run on the input node ``input_id`` added to ``scene``."""
    return [
        scene.GetNthNode(index)
        for index in range(scene.GetNumberOfNodes())
        if scene.GetNthNode(index).GetAttribute(INPUT_ATTRIBUTE) == input_id
    ]


def add_results_to_scene(result: ExtractionResult, scene: Any, input_node: Any, stem: str | None = None) -> ResultNodes:
    """Add the tables, the chart and the heatmap of ``result`` to ``scene``, replacing the earlier run's nodes of
    ``input_node`` (one set of result nodes per input). Nodes are named after the input node (and ``stem``, the
    results' file name, in their descriptions).

    Either every node is added or, if anything fails, none is left behind (the earlier nodes are then kept).
    """
    base_name = input_node.GetName()
    input_id = input_node.GetID()
    earlier = result_nodes_of(scene, input_id)
    before = {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}
    try:
        most_variable = most_variable_feature(result.features)
        table = _add_table(scene, f"{base_name} DEN per slice", feature_table_columns(result, most_variable))
        pooled_table = _add_table(scene, f"{base_name} DEN pooled", pooled_table_columns(result))
        chart = _add_chart(scene, base_name, table, most_variable)
        heatmap = _add_heatmap(scene, f"{base_name} DEN heatmap", result.features)
        roles = {"slices": table, "pooled": pooled_table, "chart": chart, HEATMAP_ROLE: heatmap}
        for series_index in range(chart.GetNumberOfPlotSeriesNodes()):
            roles[f"series{series_index}"] = chart.GetNthPlotSeriesNode(series_index)
        for role, node in roles.items():
            node.SetAttribute(ROLE_ATTRIBUTE, role.rstrip("0123456789"))
            node.SetAttribute(INPUT_ATTRIBUTE, input_id)
            if stem:
                node.SetDescription(f"DEN Extractor results {stem}")
    except BaseException:
        _remove_nodes_added_since(scene, before)
        raise
    for node in reversed(earlier):
        _remove_with_display_nodes(scene, node)
    return ResultNodes(table=table, pooled_table=pooled_table, chart=chart, heatmap=heatmap)


def _add_table(scene: Any, name: str, columns: dict[str, np.ndarray]) -> Any:
    """Add a table node holding ``columns`` (name -> 1-D array), in order."""
    table = vtk.vtkTable()
    for column_name, values in columns.items():
        array = numpy_support.numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        array.SetName(column_name)
        table.AddColumn(array)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.SetAndObserveTable(table)
    return node


def _add_chart(scene: Any, base_name: str, table: Any, feature_index: int) -> Any:
    """Add a chart plotting the mean activation and feature ``feature_index`` of ``table`` against the slice."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{base_name} DEN chart")
    chart.SetTitle(f"DEN features of {base_name}")
    chart.SetXAxisTitle("slice")
    chart.SetYAxisTitle("activation")
    for column, color in ((MEAN_COLUMN, MEAN_SERIES_COLOR), (feature_column_name(feature_index), FEATURE_SERIES_COLOR)):
        label = column if column == MEAN_COLUMN else f"feature {feature_index} (most variable)"
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{base_name} {label}")
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
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    updateVolumeFromArray(node, np.ascontiguousarray(features, dtype=np.float32)[np.newaxis])
    node.SetIJKToRASMatrix(vtkMatrixFromArray(heatmap_ijk_to_ras(*features.shape)))
    display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")  # set up before it shows anything
    display.AutoWindowLevelOff()  # no histogram of 1 million cells: the whole Viridis scale is set below
    display.SetWindowLevelMinMax(float(features.min()), float(features.max()))
    display.SetAndObserveColorNodeID(viridis_color_node_id(scene))
    display.SetInterpolate(0)  # one feature, one crisp cell: no blur across 4096 columns
    node.SetAndObserveDisplayNodeID(display.GetID())
    return node


def _remove_with_display_nodes(scene: Any, node: Any) -> None:
    """Remove a node and the display nodes only it used."""
    displays = []
    if node.IsA("vtkMRMLDisplayableNode"):
        displays = [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]
    scene.RemoveNode(node)
    for display in displays:
        if display is not None and display.GetScene() is scene:
            scene.RemoveNode(display)


def _remove_nodes_added_since(scene: Any, before: set[str]) -> None:
    """Remove the nodes whose IDs are not in ``before``, newest first."""
    added = [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]
    for node in reversed([node for node in added if node.GetID() not in before]):
        scene.RemoveNode(node)
