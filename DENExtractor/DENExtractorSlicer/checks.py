"""Whether an extraction can start: the one rule, used by the run (which raises) and the widget (which shows it).

Every check returns a :class:`DENError` (not raised) or None. :func:`DENExtractorSlicer.runs.process` raises the
problem :func:`inputs_problem` finds; the module widget shows the same message in its status line and keeps
"Extract Features" disabled. Nodes are used through their VTK/MRML methods only (``IsA``, ``GetSegmentation``,
``GetImageData``), so this module needs neither Qt nor the Slicer application.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

from DENExtractorLib import DENError
from DENExtractorLib.network.weights_files import check_weights_file

from .geometry import grid_problem

SEGMENTATION_CLASS = "vtkMRMLSegmentationNode"
LABELMAP_CLASS = "vtkMRMLLabelMapVolumeNode"
SCALAR_VOLUME_CLASS = "vtkMRMLScalarVolumeNode"

ROLE_ATTRIBUTE = "DENExtractor.Role"
"""Node attribute naming what a result node is (``heatmap``, ``slices``, ``pooled``, ``chart``, ``series``)."""

HEATMAP_ROLE = "heatmap"


def chosen_path(value: str | PurePath | None) -> Path | None:
    """Return the path the user chose, or None when the field is empty.

    The parameter node stores an empty path field as ``Path()``, which reads as ``"."``; both it and an empty or
    blank string mean "not chosen".
    """
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "."):
        return None
    return Path(text)


def segment_ids_of(input_node: Any) -> list[str]:
    """Return the segment IDs of a segmentation node, in order; an empty list for any other node or None."""
    if input_node is None or not input_node.IsA(SEGMENTATION_CLASS):
        return []
    segmentation = input_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]


def segments_to_choose(input_node: Any, previous_ids: Sequence[str]) -> list[str]:
    """The segments chosen when ``input_node`` becomes the input: the previous choice where it still exists, else
    all of them (an empty list for a label map or None)."""
    available = segment_ids_of(input_node)
    kept = [segment_id for segment_id in previous_ids if segment_id in available]
    return kept or available


def segments_after_adding(input_node: Any, known_ids: Sequence[str], chosen_ids: Sequence[str]) -> list[str]:
    """The chosen segments once segments were added to the input: the choice so far, plus every segment that was
    not there when it was made (a segment drawn after choosing the input is chosen too), in segment order."""
    added = [segment_id for segment_id in segment_ids_of(input_node) if segment_id not in known_ids]
    return [segment_id for segment_id in segment_ids_of(input_node) if segment_id in chosen_ids or segment_id in added]


def segments_problem(segmentation_node: Any, segment_ids: Sequence[str] | None) -> DENError | None:
    """Why these segments cannot be extracted (None: all segments), or None when they can."""
    name = segmentation_node.GetName()
    available = segment_ids_of(segmentation_node)
    if not available:
        return DENError(name, "the segmentation has no segments")
    if segment_ids is None:
        return None
    if not segment_ids:
        return DENError(name, "no segment chosen: choose at least one segment")
    unknown = [segment_id for segment_id in segment_ids if segment_id not in available]
    if unknown:
        return DENError(name, f"no segment with ID {unknown[0]!r} in this segmentation")
    return None


def _has_voxels(volume_node: Any) -> bool:
    image = volume_node.GetImageData()
    return image is not None and image.GetNumberOfPoints() > 0


def input_problem(input_node: Any, segment_ids: Sequence[str] | None = None) -> DENError | None:
    """Why the input node cannot be extracted, or None when it can (``segment_ids`` only for a segmentation)."""
    if input_node is None:
        return DENError("input", "choose a segmentation or a label map volume")
    if input_node.IsA(SEGMENTATION_CLASS):
        return segments_problem(input_node, segment_ids)
    if input_node.IsA(LABELMAP_CLASS):
        return None if _has_voxels(input_node) else DENError(input_node.GetName(), "the label map has no voxels")
    return DENError(input_node.GetName(), "neither a segmentation nor a label map volume: choose one of those")


def image_problem(image_node: Any, input_node: Any = None) -> DENError | None:
    """Why the optional intensity volume cannot be used with ``input_node``, or None when it can (or is None)."""
    if image_node is None:
        return None
    name = image_node.GetName()
    if not image_node.IsA(SCALAR_VOLUME_CLASS) or image_node.IsA(LABELMAP_CLASS):
        return DENError(name, "the intensity volume must be a scalar volume, not a label map")
    if image_node.GetAttribute(ROLE_ATTRIBUTE) == HEATMAP_ROLE:
        return DENError(name, "a DEN heatmap (a result), not an MRI: choose the MRI the segmentation was drawn on")
    if input_node is not None and image_node.GetID() == input_node.GetID():
        return DENError(name, "the intensity volume must differ from the input")
    if not _has_voxels(image_node):
        return DENError(name, "the intensity volume has no voxels")
    return None


def weights_problem(weights_path: str | PurePath | None, use_bundled_weights: bool = False) -> DENError | None:
    """Why the weights choice cannot be used, or None when it can (bundled weights always can).

    A chosen file gets the core's own check (the one :class:`DENExtractorLib.ExtractionSettings` runs, on metadata
    only). Before the first install h5py may be missing: then the run checks the file once the packages are
    installed.
    """
    if use_bundled_weights:
        return None
    path = chosen_path(weights_path)
    if path is None:
        return DENError("weights", "choose a weights file, or use the bundled reference weights")
    try:
        check_weights_file(path.expanduser().absolute())
    except DENError as problem:
        return problem
    except ImportError:  # h5py, needed to read a .weights.h5 file's metadata, is not installed yet
        return None
    return None


def output_problem(output_folder: str | PurePath | None, scene_has_url: bool) -> DENError | None:
    """Why results cannot be written, or None when they can (a folder that does not exist yet is created)."""
    path = chosen_path(output_folder)
    if path is None:
        if scene_has_url:
            return None
        return DENError("output folder", "the scene has not been saved and no output folder was chosen: choose one")
    if path.exists() and not path.is_dir():
        return DENError(path, "the output folder is a file")
    return None


def inputs_problem(
    input_node: Any,
    image_node: Any = None,
    *,
    segment_ids: Sequence[str] | None = None,
    use_bundled_weights: bool = True,
    weights_path: str | PurePath | None = None,
    output_folder: str | PurePath | None = None,
    scene_has_url: bool = False,
) -> DENError | None:
    """Return why an extraction cannot start with these inputs (the first fault found), or None when it can.

    :param input_node: the segmentation node or label map volume node to extract from, or None.
    :param image_node: the optional intensity (scalar, non-label-map) volume node.
    :param segment_ids: the segments chosen in a segmentation node; None means all of them. Ignored for label maps.
    :param use_bundled_weights: True to use the bundled reference weights, False to use ``weights_path``.
    :param weights_path: the weights file chosen by the user (only checked when ``use_bundled_weights`` is False).
    :param output_folder: the folder chosen for the results; empty means the saved scene's folder.
    :param scene_has_url: whether the scene has been saved (has a URL), so that its folder can take the results.
    :return: the fault as a :class:`DENError` (``str()`` gives the one-line message), or None.
    """
    return (
        input_problem(input_node, segment_ids)
        or image_problem(image_node, input_node)
        or grid_problem(input_node, image_node)
        or weights_problem(weights_path, use_bundled_weights)
        or output_problem(output_folder, scene_has_url)
    )
