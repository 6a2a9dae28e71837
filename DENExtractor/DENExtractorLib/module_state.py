"""Whether the DEN Extractor module's inputs are ready, decided without Qt.

The module widget enables its "Extract Features" button only when :func:`inputs_problem` returns None, and shows
the message it returns otherwise in its status line. Nodes are used through their VTK/MRML methods only (``IsA``,
``GetSegmentation``, ``GetImageData``), so this module imports neither Qt nor Slicer and is tested against the
MRML nodes of the ``slicer-core`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

SEGMENTATION_CLASS = "vtkMRMLSegmentationNode"
LABELMAP_CLASS = "vtkMRMLLabelMapVolumeNode"
SCALAR_VOLUME_CLASS = "vtkMRMLScalarVolumeNode"


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


def _has_voxels(volume_node: Any) -> bool:
    image = volume_node.GetImageData()
    return image is not None and image.GetNumberOfPoints() > 0


def _input_problem(input_node: Any, segment_ids: Sequence[str] | None) -> str | None:
    if input_node is None:
        return "Select an input segmentation or label map."
    if input_node.IsA(SEGMENTATION_CLASS):
        available = segment_ids_of(input_node)
        if not available:
            return f"Segmentation '{input_node.GetName()}' has no segments."
        if segment_ids is None:
            return None
        if not segment_ids:
            return "Select at least one segment."
        unknown = [segment_id for segment_id in segment_ids if segment_id not in available]
        if unknown:
            return f"Segment '{unknown[0]}' is not in segmentation '{input_node.GetName()}'."
        return None
    if input_node.IsA(LABELMAP_CLASS):
        if not _has_voxels(input_node):
            return f"Label map '{input_node.GetName()}' has no voxels."
        return None
    return f"'{input_node.GetName()}' is neither a segmentation nor a label map volume."


def _image_problem(image_node: Any, input_node: Any) -> str | None:
    if image_node is None:
        return None
    if not image_node.IsA(SCALAR_VOLUME_CLASS) or image_node.IsA(LABELMAP_CLASS):
        return f"Intensity volume '{image_node.GetName()}' must be a scalar volume, not a label map."
    if input_node is not None and image_node.GetID() == input_node.GetID():
        return "The intensity volume must differ from the input label map."
    if not _has_voxels(image_node):
        return f"Intensity volume '{image_node.GetName()}' has no voxels."
    return None


def _weights_problem(use_bundled_weights: bool, weights_path: str | PurePath | None) -> str | None:
    if use_bundled_weights:
        return None
    path = chosen_path(weights_path)
    if path is None:
        return "Choose a weights file, or use the bundled reference weights."
    if not path.exists():
        return f"Weights file not found: {path}"
    if not path.is_file():
        return f"Weights path is not a file: {path}"
    return None


def _output_problem(output_folder: str | PurePath | None, scene_has_url: bool) -> str | None:
    path = chosen_path(output_folder)
    if path is None:
        return None if scene_has_url else "Choose an output folder: the scene has not been saved yet."
    if path.exists() and not path.is_dir():
        return f"Output folder is a file: {path}"
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
) -> str | None:
    """Return why an extraction cannot start with these inputs, or None when it can.

    :param input_node: the segmentation node or label map volume node to extract from, or None.
    :param image_node: the optional intensity (scalar, non-label-map) volume node.
    :param segment_ids: the segments chosen in a segmentation node; None means all of them. Ignored for label maps.
    :param use_bundled_weights: True to use the bundled reference weights, False to use ``weights_path``.
    :param weights_path: the weights file chosen by the user (only checked when ``use_bundled_weights`` is False).
    :param output_folder: the folder chosen for the results; empty means the saved scene's folder. A folder that
        does not exist yet is fine (it is created); an existing file is not.
    :param scene_has_url: whether the scene has been saved (has a URL), so that its folder can take the results.
    :return: a one-line message for the module's status line, or None when the inputs are valid.
    """
    return (
        _input_problem(input_node, segment_ids)
        or _image_problem(image_node, input_node)
        or _weights_problem(use_bundled_weights, weights_path)
        or _output_problem(output_folder, scene_has_url)
    )
