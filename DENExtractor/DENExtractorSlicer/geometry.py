"""Where nodes' voxels lie in the world: parent transforms hardened into IJK-to-RAS, and whether two grids match.

Only matrices are read here (no voxel), so the module's status line can apply the grid rule before the click: in
image mode the segmentation, label map or segmentation layers alike, must lie on the MRI's voxel grid
(:func:`grid_problem`), the rule the export (:mod:`.export`) and the worker (:mod:`.case_files`) rely on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import vtk
from DENExtractorLib import DENError
from slicer.util import arrayFromVTKMatrix

from .case_files import grid_offset

BINARY_LABELMAP = "Binary labelmap"
SEGMENTATION_CLASS = "vtkMRMLSegmentationNode"


def world_matrix(node: Any) -> np.ndarray | None:
    """The node's parent transform to world as a 4x4 matrix, or None without a parent transform.

    :raises DENError: for a non-linear transform (harden it in the Transforms module first).
    """
    parent = node.GetParentTransformNode()
    if parent is None:
        return None
    if not parent.IsTransformToWorldLinear():
        raise DENError(node.GetName(), f"its transform {parent.GetName()!r} is not linear: harden it first")
    matrix = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(matrix)
    return np.array(arrayFromVTKMatrix(matrix), dtype=np.float64)


def hardened(affine: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """An IJK-to-RAS matrix with a parent transform (``matrix``, None for none) hardened into it."""
    return affine if matrix is None else matrix @ affine


def volume_affine(volume_node: Any) -> np.ndarray:
    """A volume node's IJK-to-RAS matrix, its parent transform hardened in."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return hardened(np.array(arrayFromVTKMatrix(matrix), dtype=np.float64), world_matrix(volume_node))


def index_zero_affine(image: Any, extent: Sequence[int]) -> np.ndarray:
    """The IJK-to-RAS matrix of an oriented image's first voxel (its extent need not start at 0)."""
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    affine = np.array(arrayFromVTKMatrix(matrix), dtype=np.float64)
    start = np.eye(4)
    start[:3, 3] = [extent[0], extent[2], extent[4]]
    return affine @ start


def labelmap_layer_affines(segmentation_node: Any) -> list[np.ndarray]:
    """The hardened IJK-to-RAS matrices of a segmentation's non-empty binary labelmap layers (none for closed
    surfaces, which the export converts onto the target grid)."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSourceRepresentationName() != BINARY_LABELMAP:
        return []
    matrix = world_matrix(segmentation_node)
    affines = []
    for layer in range(segmentation.GetNumberOfLayers(BINARY_LABELMAP)):
        image = segmentation.GetLayerDataObject(layer, BINARY_LABELMAP)
        extent = image.GetExtent()
        if image.GetPointData().GetScalars() is None or extent[1] < extent[0]:
            continue
        affines.append(hardened(index_zero_affine(image, extent), matrix))
    return affines


def off_grid_message(input_name: str, image_name: str) -> DENError:
    """The one message for an input that does not lie on the MRI's voxel grid (both node kinds)."""
    return DENError(input_name, f"the segmentation is not on the voxel grid of {image_name!r}: choose the MRI it "
                                "was drawn on (or resample one onto the other)")


def grid_problem(input_node: Any, image_node: Any) -> DENError | None:
    """Why ``input_node`` cannot be extracted on ``image_node``'s grid (image mode), or None when it can: a label map
    and every labelmap layer of a segmentation must lie on the MRI's voxel grid (whole-voxel offsets only).
    A non-linear transform is reported as such."""
    if input_node is None or image_node is None:
        return None
    try:
        target = volume_affine(image_node)
        is_segmentation = input_node.IsA(SEGMENTATION_CLASS)
        affines = labelmap_layer_affines(input_node) if is_segmentation else [volume_affine(input_node)]
    except DENError as problem:
        return problem
    if any(grid_offset(target, affine) is None for affine in affines):
        return off_grid_message(input_node.GetName(), image_node.GetName())
    return None
