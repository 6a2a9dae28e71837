"""The private case folder between Slicer and its worker process: what the module exports, what the worker reads.

Slicer's side (:mod:`.export`) writes raw voxel arrays (``.npy`` in VTK's (k, j, i) order, never pickled)
with their geometry in ``case.json``; the worker (:mod:`.worker`) reads them back and builds the core's volumes.
Neither side imports slicer, vtk or TensorFlow here: this module is numpy and the core only.

A segmentation travels as its labelmap layers (each with its own grid and the label values its segments have in
it); the worker places every layer on the target grid by a whole-voxel offset, so the merge costs Slicer's main
thread nothing. Every layer's grid must be the target grid or a box of it (:func:`grid_offset`); Slicer's side
checks that before exporting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from DENExtractorLib import DENError, Volume, image_from_array, segmentation_from_array
from DENExtractorLib.settings import DEFAULT_LABEL_MAX

CASE_FORMAT = "den-slicer-case/1"
CASE_FILE = "case.json"

LATER_SEGMENT_WINS = "later segment wins"
"""The grid's ``overlaps`` rule for closed surfaces converted for the export."""

LARGEST_LABEL = "largest label"
"""A run request's ``label_max`` for a label map node in oriented mode: the worker scales the labels by max(4, the
largest label it finds in the exported voxels), so Slicer's main thread never scans the volume."""

GRID_TOLERANCE = 1e-3
"""How far (in voxels) a layer's grid may lie from the target grid and still count as the same grid."""


@dataclass(frozen=True)
class LayerSegment:
    """One chosen segment of a layer: its value in the layer (``stored``) and its value in the label map."""

    stored: int
    value: int


def grid_offset(target_affine: np.ndarray, affine: np.ndarray) -> tuple[int, int, int] | None:
    """The whole-voxel offset of grid ``affine`` inside grid ``target_affine`` (index 0 of one in the other), or
    None when the two grids differ in spacing, direction or by a fraction of a voxel."""
    mapping = np.linalg.inv(np.asarray(target_affine, dtype=np.float64)) @ np.asarray(affine, dtype=np.float64)
    if not np.allclose(mapping[:3, :3], np.eye(3), atol=GRID_TOLERANCE, rtol=0):
        return None
    offset = mapping[:3, 3]
    rounded = np.round(offset)
    if not np.allclose(offset, rounded, atol=GRID_TOLERANCE, rtol=0):
        return None
    return int(rounded[0]), int(rounded[1]), int(rounded[2])



def oriented_label_max(largest_label: float | None) -> float | None:
    """Oriented mode's fixed label scale for an input whose labels go up to ``largest_label``: max(4, largest) as
    ``den-extract --label-max N`` gives on the saved file (None: the default scale, 4)."""
    if largest_label is None or largest_label <= DEFAULT_LABEL_MAX:
        return None
    return float(largest_label)


CHUNK_BYTES = 4 << 20
"""Bytes written per step of :func:`write_array_steps` (a few milliseconds of the main thread)."""


def write_array_steps(path: Path, data: np.ndarray) -> Iterator[str]:
    """Save a C-contiguous array as a ``.npy`` file, yielding after every :data:`CHUNK_BYTES` written."""
    data = np.ascontiguousarray(data)
    flat = data.reshape(-1)
    step = max(1, CHUNK_BYTES // max(data.itemsize, 1))
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, np.lib.format.header_data_from_array_1_0(data))
        for start in range(0, flat.size, step):
            handle.write(flat[start:start + step].tobytes())
            yield "array written"


def voxels_ijk(data_kji: np.ndarray) -> np.ndarray:
    """A volume's voxels in nibabel's (i, j, k) order from VTK's (k, j, i) order (a view)."""
    return data_kji.transpose(2, 1, 0)


def write_case(folder: Path, description: dict[str, Any]) -> Path:
    """Write ``case.json`` last, so a folder with one holds every array it names."""
    path = folder / CASE_FILE
    path.write_text(json.dumps(dict(description, format=CASE_FORMAT), indent=1), encoding="utf-8")
    return path


def read_case(folder: Path) -> tuple[Volume, Volume | None, dict[str, Any]]:
    """Read an exported case: the segmentation volume, the image volume (or None) and the Slicer record.

    :raises DENError: for a folder that is not a complete case, or layers that cannot be placed on the grid.
    """
    folder = Path(folder)
    try:
        description = json.loads((folder / CASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DENError(folder, f"not an exported case ({error})") from None
    if description.get("format") != CASE_FORMAT:
        raise DENError(folder, f"not a {CASE_FORMAT} case folder")
    source = str(description["source"])
    image = None
    if description.get("image") is not None:
        entry = description["image"]
        image = image_from_array(voxels_ijk(_load(folder, entry["file"])), np.array(entry["affine"]), entry["source"])
    grid = description["grid"]
    affine = np.array(grid["affine"], dtype=np.float64)
    if "file" in grid:  # a label map exported whole, on its own grid
        data = voxels_ijk(_load(folder, grid["file"]))
    else:
        layers = [
            (
                voxels_ijk(_load(folder, layer["file"])),
                np.array(layer["affine"], dtype=np.float64),
                [LayerSegment(int(s["stored"]), int(s["value"])) for s in layer["segments"]],
            )
            for layer in description["layers"]
        ]
        later_wins = grid.get("overlaps") == LATER_SEGMENT_WINS
        data, overlapping = place_layers(tuple(grid["shape"]), affine, layers, source,
                                         strict=bool(grid.get("strict")), later_wins=later_wins)
        if later_wins:
            description.setdefault("slicer", {})["overlapping_voxels_given_to_the_later_segment"] = overlapping
    segmentation = segmentation_from_array(data, affine, source)
    return segmentation, image, dict(description.get("slicer", {}))


def _load(folder: Path, file_name: str) -> np.ndarray:
    """Load one array of the case (a plain name inside the folder; never a pickle)."""
    if Path(file_name).name != file_name:
        raise DENError(folder, f"case array {file_name!r} is not a file of this folder")
    return np.load(folder / file_name, allow_pickle=False)


def place_layers(
    shape: tuple[int, ...],
    affine: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray, list[LayerSegment]]],
    source: str,
    *,
    strict: bool,
    later_wins: bool = False,
) -> tuple[np.ndarray, int]:
    """Merge labelmap layers into one label map on the grid (``shape``, ``affine``); return it and how many voxels
    more than one chosen segment claimed.

    Each layer (voxels, IJK-to-RAS of its index 0, chosen segments) is placed at its whole-voxel offset; its
    chosen segments get their label-map values, other voxels stay 0. A layer of segments given as
    ``LayerSegment(0, 0)`` keeps its stored values (a label map layer). Voxels of the layers outside the grid are
    cut off, or refused when ``strict`` (image mode: the MRI must hold the whole segmentation). Voxels claimed by
    two chosen segments are refused, unless ``later_wins`` (closed surfaces converted here, whose adjacent segments
    overlap by conversion, not by drawing): then the later entry keeps them, as Slicer's own label map export does.

    :raises DENError: for chosen segments that share voxels (unless ``later_wins``), no chosen voxel at all, or
        (``strict``) voxels outside the grid.
    """
    values = [segment.value for _, _, segments in layers for segment in segments]
    dtype: np.dtype = np.dtype(np.int16 if max(values, default=0) < 2**15 else np.int32)
    keep_stored = any(segment.stored == 0 for _, _, segments in layers for segment in segments)
    if keep_stored:
        dtype = np.result_type(*(data.dtype for data, _, _ in layers))
    merged = np.zeros(shape, dtype=dtype)
    claimed = np.zeros(shape, dtype=np.uint8) if len(layers) > 1 else None
    for data, layer_affine, segments in layers:
        offset = grid_offset(affine, layer_affine)
        if offset is None:
            raise DENError(source, "a segmentation layer is not on the voxel grid it is exported to")
        labels = _layer_labels(data, segments, dtype, keep_stored)
        inside, _ = _clip(labels.shape, offset, shape)
        if strict and _count_outside(labels, inside):
            raise DENError(source, "part of the segmentation lies outside the MRI: choose the MRI it was drawn on")
        if inside is None:
            continue
        source_box, target_box = inside
        part = labels[source_box]
        chosen = part != 0
        if claimed is not None:
            claimed[target_box] += chosen
        merged[target_box][chosen] = part[chosen]
    overlapping = int(np.count_nonzero(claimed > 1)) if claimed is not None else 0
    if overlapping and not later_wins:
        raise DENError(
            source,
            f"{overlapping} voxels belong to more than one of the chosen segments (overlapping layers); "
            "DEN needs one label per voxel: choose segments that do not overlap",
        )
    if not merged.any():
        if strict:
            raise DENError(source, "the segmentation does not overlap the MRI: choose the MRI it was drawn on")
        raise DENError(source, "the chosen segments are empty: nothing to extract")
    return merged, overlapping


def _layer_labels(data: np.ndarray, segments: list[LayerSegment], dtype: Any, keep_stored: bool) -> np.ndarray:
    """A layer's voxels as label-map values: chosen segments renumbered, everything else 0."""
    if keep_stored:
        return data.astype(dtype, copy=False)
    labels = np.zeros(data.shape, dtype=dtype)
    for segment in segments:
        labels[data == segment.stored] = segment.value
    return labels


def _clip(
    layer_shape: tuple[int, ...], offset: tuple[int, int, int], shape: tuple[int, ...]
) -> tuple[tuple[tuple[slice, ...], tuple[slice, ...]] | None, bool]:
    """The part of a layer inside the grid (layer slices, grid slices; None when none is) and whether any is not."""
    source_box, target_box, cut = [], [], False
    for length, start, size in zip(layer_shape, offset, shape, strict=True):
        low, high = max(start, 0), min(start + length, size)
        cut = cut or low != start or high != start + length
        if high <= low:
            return None, True
        source_box.append(slice(low - start, high - start))
        target_box.append(slice(low, high))
    return (tuple(source_box), tuple(target_box)), cut


def _count_outside(labels: np.ndarray, inside: tuple[tuple[slice, ...], tuple[slice, ...]] | None) -> int:
    """How many labelled voxels of a layer lie outside its part inside the grid."""
    total = int(np.count_nonzero(labels))
    if inside is None:
        return total
    return total - int(np.count_nonzero(labels[inside[0]]))
