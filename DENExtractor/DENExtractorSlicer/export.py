"""Slicer's side of a background run: the chosen inputs exported once to a private case folder, in small steps.

:func:`export_steps` is a generator: each ``next()`` does one bounded piece of main-thread work (one array copied,
one file saved) so the module's timer keeps Slicer responsive. The user's nodes are only read:

* parent transforms are hardened into the exported copy, the way Slicer's "Harden transform" does for a linear
  transform (the voxels stay, the grid moves: IJK-to-RAS becomes transform-to-world @ IJK-to-RAS), for label
  maps, segmentations and the MRI alike; a non-linear transform is refused;
* a segmentation's segments are numbered as the whole segmentation is numbered
  (:func:`DENExtractorSlicer.nodes.segment_label_values` over every segment), so a subset gives the label values
  ``den-extract --labels`` keeps from the saved ``.seg.nrrd``;
* the target grid is the MRI's in image mode, for both node kinds (the segmentation must lie inside it, on its
  voxel grid), else the segmentation's reference geometry (a label map's own grid);
* closed surfaces (imported models) are converted on a copy, onto that grid.

The worker merges the layers (:mod:`.case_files`); only a segmentation whose layers are not on its reference grid,
or that has no reference geometry, is merged here by Slicer's own exporter, in one step.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from DENExtractorLib import DENError
from vtk.util import numpy_support

from . import case_files
from .case_files import LayerSegment, grid_offset
from .checks import SEGMENTATION_CLASS, image_problem, input_problem, segment_ids_of
from .geometry import BINARY_LABELMAP, hardened, index_zero_affine, off_grid_message, world_matrix
from .nodes import chosen_segment_ids, copied_in_steps, merged_labelmap_node, node_voxel_view, segment_label_values

REFERENCE_GEOMETRY = "Reference image geometry"
"""The conversion parameter holding a segmentation's voxel grid (``vtkSegmentationConverter``'s name for it)."""


def transform_record(node: Any) -> dict[str, Any] | None:
    """What the provenance records of a node's parent transform: its name and matrix to world (None: none)."""
    matrix = world_matrix(node)
    if matrix is None:
        return None
    return {"name": node.GetParentTransformNode().GetName(), "matrix_to_world": matrix.tolist()}


def export_steps(
    input_node: Any, segment_ids: Sequence[str] | None, image_node: Any, folder: Path
) -> Iterator[str]:
    """Export the inputs into ``folder`` step by step, yielding what was just done; ``case.json`` comes last.

    :raises DENError: for inputs that cannot be extracted (the message the module's status line shows).
    """
    problem = input_problem(input_node, segment_ids) or image_problem(image_node, input_node)
    if problem is not None:
        raise problem
    folder = Path(folder)
    input_matrix = world_matrix(input_node)
    record: dict[str, Any] = {
        "node": input_node.GetName(),
        "node_class": input_node.GetClassName(),
        "input_transform": transform_record(input_node),
        "image_node": image_node.GetName() if image_node is not None else None,
        "image_transform": transform_record(image_node) if image_node is not None else None,
    }
    description: dict[str, Any] = {"source": input_node.GetName()}
    image_grid = None
    if image_node is not None:
        view, affine = node_voxel_view(image_node)
        data = yield from copied_in_steps(view)
        yield "image copied"
        affine = hardened(affine, world_matrix(image_node))
        yield from case_files.write_array_steps(folder / "image.npy", data)
        description["image"] = {"file": "image.npy", "affine": affine.tolist(), "source": image_node.GetName()}
        image_grid = {"shape": list(data.shape[::-1]), "affine": affine.tolist(), "strict": True}
        yield "image saved"
    if input_node.IsA(SEGMENTATION_CLASS):
        yield from _export_segmentation(input_node, segment_ids, image_node, image_grid, input_matrix,
                                        folder, description, record)
    else:
        view, affine = node_voxel_view(input_node)
        data = yield from copied_in_steps(view)
        yield "label map copied"
        affine = hardened(affine, input_matrix)
        file_name = "labels.npy"
        yield from case_files.write_array_steps(folder / file_name, data)
        if image_grid is None:
            description["grid"] = {"file": file_name, "affine": affine.tolist()}
        else:
            description["grid"] = image_grid
            description["layers"] = [{"file": file_name, "affine": affine.tolist(),
                                      "segments": [{"stored": 0, "value": 0}]}]
        yield "label map saved"
    description["slicer"] = record
    case_files.write_case(folder, description)
    yield "exported"


def _export_segmentation(
    node: Any,
    segment_ids: Sequence[str] | None,
    image_node: Any,
    image_grid: dict[str, Any] | None,
    matrix: np.ndarray | None,
    folder: Path,
    description: dict[str, Any],
    record: dict[str, Any],
) -> Iterator[str]:
    """Export a segmentation's chosen segments: as layers when they lie on the target grid, else merged here."""
    chosen = chosen_segment_ids(node, segment_ids)
    all_ids = segment_ids_of(node)
    value_of = dict(zip(all_ids, segment_label_values(node, all_ids), strict=True))
    segmentation = node.GetSegmentation()
    record["segments"] = [
        {"id": segment_id, "name": segmentation.GetSegment(segment_id).GetName(), "value": value_of[segment_id]}
        for segment_id in chosen
    ]
    if chosen != all_ids:
        names = ", ".join(entry["name"] for entry in record["segments"])
        description["source"] = f"{node.GetName()} [segments: {names}]"
    labelmaps = _labelmap_segmentation(node, image_grid, matrix)
    yield "segments as labelmaps"
    grid = image_grid or _reference_grid(labelmaps, matrix)
    layers = (yield from _layers(labelmaps, chosen, value_of, matrix)) if grid is not None else None
    yield "segments found"
    aligned = grid is not None and layers is not None and all(
        grid_offset(np.array(grid["affine"]), affine) is not None for _, affine, _ in layers)
    if not aligned and image_grid is not None:
        raise off_grid_message(node.GetName(), image_node.GetName())
    if not aligned and labelmaps is not segmentation:
        raise DENError(node.GetName(), "its closed surfaces could not be converted onto one voxel grid")
    if not aligned:  # Slicer's own exporter merges and resamples onto the reference geometry
        merged = merged_labelmap_node(node, chosen, [value_of[i] for i in chosen])
        if merged is None:
            raise DENError(node.GetName(), "the chosen segments are empty: nothing to extract")
        view, affine = node_voxel_view(merged)
        data = yield from copied_in_steps(view)
        yield "segments merged"
        yield from case_files.write_array_steps(folder / "labels.npy", data)
        description["grid"] = {"file": "labels.npy", "affine": hardened(affine, matrix).tolist()}
        yield "segments saved"
        return
    assert grid is not None and layers is not None  # aligned
    yield "layers copied"
    entries = []
    for index, (data, affine, segments) in enumerate(layers):
        yield from case_files.write_array_steps(folder / f"layer{index}.npy", data)
        entries.append({
            "file": f"layer{index}.npy", "affine": affine.tolist(),
            "segments": [{"stored": s.stored, "value": s.value} for s in segments],
        })
        yield f"layer {index + 1} of {len(layers)} saved"
    description["grid"] = dict(grid)
    if labelmaps is not segmentation:  # converted surfaces: one entry a segment, in segment order, later wins
        by_value = {segment["value"]: (entry, segment) for entry in entries for segment in entry["segments"]}
        entries = [dict(by_value[value_of[i]][0], segments=[by_value[value_of[i]][1]])
                   for i in chosen if value_of[i] in by_value]
        description["grid"]["overlaps"] = case_files.LATER_SEGMENT_WINS
    description["layers"] = entries


def _labelmap_segmentation(node: Any, image_grid: dict[str, Any] | None, matrix: np.ndarray | None) -> Any:
    """The segmentation whose binary labelmaps are exported: the node's own, or, for closed surfaces (imported
    models), a converted copy (the user's node gets no new representation) on the MRI's grid in image mode, else
    on the segmentation's reference geometry.

    :raises DENError: for closed surfaces with neither an MRI nor a reference geometry.
    """
    segmentation = node.GetSegmentation()
    if segmentation.GetSourceRepresentationName() == BINARY_LABELMAP:
        return segmentation
    converted = slicer.vtkSegmentation()
    converted.DeepCopy(segmentation)
    if image_grid is not None:  # the MRI's grid, in the segmentation's own frame (its transform is hardened later)
        world = np.array(image_grid["affine"], dtype=np.float64)
        local = world if matrix is None else np.linalg.inv(matrix) @ world
        extent = [0, 0, 0, 0, 0, 0]
        for axis, length in enumerate(image_grid["shape"]):
            extent[2 * axis + 1] = int(length) - 1
        converted.SetConversionParameter(
            REFERENCE_GEOMETRY, slicer.vtkSegmentationConverter.SerializeImageGeometry(_vtk_matrix(local), extent)
        )
    elif not converted.GetConversionParameter(REFERENCE_GEOMETRY):
        raise DENError(node.GetName(), "its segments are closed surfaces without a voxel grid: choose the MRI they "
                                       "belong to (image mode), or set the segmentation's geometry in the Segment "
                                       "Editor first")
    if not converted.CreateRepresentation(BINARY_LABELMAP, True):
        raise DENError(node.GetName(), "its closed surfaces could not be converted to binary labelmaps")
    return converted


def _vtk_matrix(array: np.ndarray) -> Any:
    """A 4x4 numpy array as a vtkMatrix4x4."""
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def _reference_grid(segmentation: Any, matrix: np.ndarray | None) -> dict[str, Any] | None:
    """A segmentation's reference image geometry as a grid (transform hardened), or None when it has none."""
    geometry = segmentation.GetConversionParameter(REFERENCE_GEOMETRY)
    if not geometry:
        return None
    image = slicer.vtkOrientedImageData()
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry, image, False):
        return None
    extent = image.GetExtent()
    affine = hardened(index_zero_affine(image, extent), matrix)
    shape = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    if min(shape) < 1:
        return None
    return {"shape": shape, "affine": affine.tolist(), "strict": False}


def _layers(
    segmentation: Any, chosen: Sequence[str], value_of: dict[str, int], matrix: np.ndarray | None
) -> Generator[str, None, list[tuple[np.ndarray, np.ndarray, list[LayerSegment]]]]:
    """The binary labelmap layers holding chosen segments, copied a slab per step: voxels (k, j, i; a copy),
    hardened IJK-to-RAS, chosen segments (the generator's return value)."""
    layers = []
    for layer in range(segmentation.GetNumberOfLayers(BINARY_LABELMAP)):
        ids = [i for i in segmentation.GetSegmentIDsForLayer(layer, BINARY_LABELMAP) if i in chosen]
        if not ids:
            continue
        image = segmentation.GetLayerDataObject(layer, BINARY_LABELMAP)
        extent = image.GetExtent()
        if image.GetPointData().GetScalars() is None or extent[1] < extent[0]:
            continue  # an empty layer (a segment not drawn yet)
        columns, rows, slices = image.GetDimensions()
        scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        data = yield from copied_in_steps(scalars.reshape(slices, rows, columns))
        segments = [LayerSegment(int(segmentation.GetSegment(i).GetLabelValue()), value_of[i]) for i in ids]
        layers.append((data, hardened(index_zero_affine(image, extent), matrix), segments))
    return layers
