"""Showing a result in Slicer's views, and giving the user's views back.

:func:`show_heatmap_in_slice_view` sets up one slice view (its logic, not its widget), so the same code serves the
application's Red view and the offscreen rendering the tests make with ``slicer-core``. :func:`show_results`
switches the application to the four-up plot/table layout, remembering what it changed in a :class:`ViewState`
that :func:`restore_views` puts back; the other views keep their contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import slicer

from .results import ResultNodes

RESULTS_LAYOUT = slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
"""Layout showing the heatmap (Red slice view), the chart (plot view) and the feature table (table view)."""

HEATMAP_SLICE_VIEW = "Red"


@dataclass(frozen=True)
class ViewState:
    """What :func:`show_results` changed: the layout and the Red view's layers, position, ruler and marker."""

    layout: int
    background_id: str | None
    foreground_id: str | None
    label_id: str | None
    slice_to_ras: tuple[float, ...]
    field_of_view: tuple[float, float, float]
    ruler_type: int
    orientation_marker_type: int


def show_heatmap_in_slice_view(slice_logic: Any, heatmap_node: Any) -> None:
    """Show ``heatmap_node`` alone in a slice view, axial, fitted, without ruler or orientation marker.

    The heatmap is not anatomy: a ruler or R/A/S letters would mean nothing, and the user's foreground and label
    layers would lie over it at unrelated positions.
    """
    slice_node = slice_logic.GetSliceNode()
    composite = slice_logic.GetSliceCompositeNode()
    slice_node.SetOrientationToAxial()
    slice_node.SetRulerType(slicer.vtkMRMLAbstractViewNode.RulerTypeNone)
    slice_node.SetOrientationMarkerType(slicer.vtkMRMLAbstractViewNode.OrientationMarkerTypeNone)
    composite.SetBackgroundVolumeID(heatmap_node.GetID())
    composite.SetForegroundVolumeID(None)
    composite.SetLabelVolumeID(None)
    slice_logic.FitSliceToAll()


def show_results(result_nodes: ResultNodes) -> ViewState | None:
    """Switch to the results layout: heatmap in Red, chart in the plot view, feature table in the table view.

    :return: what was changed, for :func:`restore_views`; None without the application's views (``slicer-core``,
        or an application without a main window), where nothing is changed.
    """
    app = getattr(slicer, "app", None)
    layout_manager = app.layoutManager() if app is not None else None
    if app is None or layout_manager is None:
        return None
    red = layout_manager.sliceWidget(HEATMAP_SLICE_VIEW).sliceLogic()
    state = view_state(layout_manager.layout, red)
    layout_manager.setLayout(RESULTS_LAYOUT)
    show_heatmap_in_slice_view(red, result_nodes.heatmap)
    application_logic = app.applicationLogic()
    selection = application_logic.GetSelectionNode()
    selection.SetActivePlotChartID(result_nodes.chart.GetID())
    application_logic.PropagatePlotChartSelection()
    selection.SetActiveTableID(result_nodes.table.GetID())
    application_logic.PropagateTableSelection()
    return state


def restore_views(state: ViewState) -> None:
    """Give back the layout and the Red view as they were before :func:`show_results` changed them."""
    layout_manager = slicer.app.layoutManager()
    layout_manager.setLayout(state.layout)
    red = layout_manager.sliceWidget(HEATMAP_SLICE_VIEW).sliceLogic()
    apply_view_state(red, state)


def apply_view_state(slice_logic: Any, state: ViewState) -> None:
    """Put a slice view's layers, position and zoom, ruler and orientation marker back as ``state`` recorded them."""
    slice_node = slice_logic.GetSliceNode()
    composite = slice_logic.GetSliceCompositeNode()
    composite.SetBackgroundVolumeID(state.background_id)
    composite.SetForegroundVolumeID(state.foreground_id)
    composite.SetLabelVolumeID(state.label_id)
    slice_node.GetSliceToRAS().DeepCopy(state.slice_to_ras)
    slice_node.SetFieldOfView(*state.field_of_view)
    slice_node.UpdateMatrices()
    slice_node.SetRulerType(state.ruler_type)
    slice_node.SetOrientationMarkerType(state.orientation_marker_type)


def view_state(layout: int, slice_logic: Any) -> ViewState:
    """Record the layout and what :func:`show_heatmap_in_slice_view` changes in a slice view."""
    slice_node = slice_logic.GetSliceNode()
    composite = slice_logic.GetSliceCompositeNode()
    return ViewState(
        layout=layout,
        background_id=composite.GetBackgroundVolumeID(),
        foreground_id=composite.GetForegroundVolumeID(),
        label_id=composite.GetLabelVolumeID(),
        slice_to_ras=tuple(
            slice_node.GetSliceToRAS().GetElement(row, column)
            for row in range(4)
            for column in range(4)
        ),
        field_of_view=tuple(slice_node.GetFieldOfView()),
        ruler_type=slice_node.GetRulerType(),
        orientation_marker_type=slice_node.GetOrientationMarkerType(),
    )

