"""MRML nodes read for the export (:mod:`.export`): voxels, segment choices and label values, Slicer's merge.

* a segmentation's segments are numbered as the whole segmentation is numbered (:func:`segment_label_values`, the
  rule the command line's ``.seg.nrrd`` reader applies), so a subset keeps the values it has in the saved file;
* voxel arrays are copied in VTK's (k, j, i) order with the node's own IJK-to-RAS matrix (:func:`node_voxels`;
  :mod:`.export` hardens parent transforms into its copy, the worker reorders to nibabel's (i, j, k));
* :func:`merged_labelmap_node` is Slicer's own exporter, for segmentations whose layers are not on one grid.

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
