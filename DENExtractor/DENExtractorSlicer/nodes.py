"""MRML nodes to the core's volumes: the arrays ``den-extract`` would read from the same file.

* voxel arrays are transposed from VTK's (k, j, i) to nibabel's (i, j, k) order, with the node's IJK-to-RAS matrix
  as the affine (the node's own geometry; :mod:`.export` hardens parent transforms into its copy);
* a segmentation keeps each segment's own label value (the value it has in its source labelmap, e.g. the label
  it had in the file it was loaded from), instead of the 1..N a plain "export to label map" would give;
* a segmentation is exported onto its reference image geometry (the grid it was loaded or drawn on), or onto the
  intensity volume's grid in image mode, so the label map has the original file's shape.

Works in the Slicer application and with the MRML libraries of the ``slicer-core`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import slicer
import vtk
from DENExtractorLib import (
    DENError,
    Volume,
    distinct_label_values,
    image_from_array,
    segmentation_from_array,
)
from slicer.util import arrayFromVTKMatrix
from vtk.util import numpy_support

from .checks import SEGMENTATION_CLASS, input_problem, segment_ids_of, segments_problem


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
    :return: the label map with each segment's label value, numbered over the whole segmentation (see
        :func:`segment_label_values`), so a subset keeps the values it has in the saved ``.seg.nrrd``.
    :raises DENError: for unknown or empty segments, or voxels claimed by two chosen segments (overlapping layers).
    """
    segment_ids = chosen_segment_ids(segmentation_node, segment_ids)
    all_ids = segment_ids_of(segmentation_node)
    value_of = dict(zip(all_ids, segment_label_values(segmentation_node, all_ids), strict=True))
    values = [value_of[segment_id] for segment_id in segment_ids]
    labelmap = _merged_labelmap_node(segmentation_node, segment_ids, values, reference_volume_node)
    if labelmap is None:
        raise DENError(segmentation_node.GetName(), "the chosen segments are empty: nothing to extract")
    data, affine = _node_arrays(labelmap)
    _refuse_overlaps(segmentation_node, segment_ids, values, labelmap, data.shape)
    return segmentation_from_array(data, affine, _segmentation_source(segmentation_node, segment_ids))


def chosen_segment_ids(segmentation_node: Any, segment_ids: Sequence[str] | None) -> list[str]:
    """Return the segment IDs to export: all segments for None, else the given ones.

    :raises DENError: the fault :func:`DENExtractorSlicer.checks.segments_problem` finds.
    """
    problem = segments_problem(segmentation_node, segment_ids)
    if problem is not None:
        raise problem
    return segment_ids_of(segmentation_node) if segment_ids is None else list(segment_ids)


def segment_label_values(segmentation_node: Any, segment_ids: Sequence[str]) -> list[int]:
    """Return the label value each segment gets in the exported label map.

    Each segment keeps its own label value: its value in its source labelmap, i.e. the label it had in the label
    map or ``.seg.nrrd`` file it was loaded from; clashes are resolved by :func:`distinct_label_values`, the rule
    the command line applies to ``.seg.nrrd`` files.
    """
    segmentation = segmentation_node.GetSegmentation()
    values = [int(segmentation.GetSegment(segment_id).GetLabelValue()) for segment_id in segment_ids]
    return distinct_label_values(values)


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
    data, affine = node_voxels(volume_node)
    return np.ascontiguousarray(data.transpose(2, 1, 0)), affine


def node_voxels(volume_node: Any) -> tuple[np.ndarray, np.ndarray]:
    """A volume node's voxels in VTK's (k, j, i) order (one contiguous copy, no reordering) and its IJK-to-RAS."""
    name = volume_node.GetName()
    image = volume_node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0 or image.GetPointData().GetScalars() is None:
        raise DENError(name, "the volume has no voxels")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise DENError(name, f"the volume has {components} values per voxel: a single-component volume is needed")
    columns, rows, slices = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array(scalars.reshape(slices, rows, columns)), np.array(arrayFromVTKMatrix(matrix), dtype=np.float64)


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


def segmentation_volume(input_node: Any, segment_ids: Sequence[str] | None = None, image_node: Any = None) -> Volume:
    """Return the input node as a segmentation :class:`Volume`; a segmentation is exported onto the image's grid.

    :param input_node: a ``vtkMRMLSegmentationNode`` or a ``vtkMRMLLabelMapVolumeNode``.
    :param segment_ids: segments of a segmentation to include (None: all); ignored for a label map.
    :param image_node: the intensity volume of image mode, or None.
    :raises DENError: the fault :func:`DENExtractorSlicer.checks.input_problem` finds, or one found on export.
    """
    problem = input_problem(input_node, segment_ids)
    if problem is not None:
        raise problem
    if input_node.IsA(SEGMENTATION_CLASS):
        return volume_from_segmentation_node(input_node, segment_ids, image_node)
    return volume_from_labelmap_node(input_node)
