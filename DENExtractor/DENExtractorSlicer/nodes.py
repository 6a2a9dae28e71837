"""MRML nodes read for the export (:mod:`.export`): voxels, segment choices and label values, Slicer's merge.

* a segmentation's segments are numbered as the whole segmentation is numbered (:func:`segment_label_values`, the
  rule the command line's ``.seg.nrrd`` reader applies), so a subset keeps the values it has in the saved file;
* voxel arrays are copied in VTK's (k, j, i) order with the node's own IJK-to-RAS matrix (:func:`node_voxel_view`, :func:`copied_in_steps`;
  :mod:`.export` hardens parent transforms into its copy, the worker reorders to nibabel's (i, j, k));
* :func:`merged_labelmap_node` is Slicer's own exporter, for segmentations whose layers are not on one grid.

Works in the Slicer application and with the MRML libraries of the ``slicer-core`` package.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import slicer
import vtk
from DENExtractorLib import (
    DENError,
    distinct_label_values,
)
from slicer.util import arrayFromVTKMatrix
from vtk.util import numpy_support

from .checks import segment_ids_of, segments_problem


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


def merged_labelmap_node(
    segmentation_node: Any, segment_ids: Sequence[str], values: Sequence[int], reference: Any = None
) -> Any | None:
    """Merge segments into a label map volume node outside any scene with Slicer's exporter, on ``reference``'s
    grid or else the segmentation's reference geometry (or, without one, the box holding the segments), each
    segment with its value in ``values``. Returns None when the segments hold no voxels at all.
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


COPY_BYTES = 8 << 20
"""Bytes copied per step of :func:`copied_in_steps` (a few milliseconds of the main thread)."""


def node_voxel_view(volume_node: Any) -> tuple[np.ndarray, np.ndarray]:
    """A volume node's voxels in VTK's (k, j, i) order (a view of the node's own array: copy it before the node can
    change, with :func:`copied_in_steps`) and its IJK-to-RAS matrix."""
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
    return scalars.reshape(slices, rows, columns), np.array(arrayFromVTKMatrix(matrix), dtype=np.float64)


def copied_in_steps(array: np.ndarray) -> Generator[str, None, np.ndarray]:
    """A contiguous copy of an array, made a slab of its first axis (about :data:`COPY_BYTES`) per step; the copy
    is the generator's return value (``copy = yield from copied_in_steps(view)``)."""
    copy = np.empty(array.shape, dtype=array.dtype)
    per_step = max(1, COPY_BYTES // max(1, array[0].nbytes if len(array) else 1))
    for start in range(0, len(array), per_step):
        copy[start : start + per_step] = array[start : start + per_step]
        yield "voxels copied"
    return copy


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
