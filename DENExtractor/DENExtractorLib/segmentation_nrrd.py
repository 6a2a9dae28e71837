"""Reading 3D Slicer ``.seg.nrrd`` segmentations as one label map with the segments' own label values.

The stored voxels may be cropped to the segments' extent; they are placed back on the full reference image
geometry the file records, so that a ``.seg.nrrd`` and a NIfTI of the same labels give the same grid (and so the
same features). Layers (overlapping segments) are merged when no voxel is claimed by two segments, and refused
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DENError, describe_error
from .volumes import LPS_TO_RAS, check_dimensions


def read_segmentation_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (label map in i, j, k order, voxel-to-RAS affine) of a ``.seg.nrrd`` file."""
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as error:  # slicerio/pynrrd raise many kinds on corrupt files
        raise DENError(path, f"not a readable Slicer segmentation ({describe_error(error)})") from None
    voxels = np.asarray(segmentation["voxels"])
    labels = _merge_layers(voxels, segmentation["segments"], path)
    affine = LPS_TO_RAS @ np.asarray(segmentation["ijkToLPS"], dtype=np.float64)
    reference = _reference_geometry(segmentation)
    if reference is None:
        return labels, affine
    reference_affine, reference_start, reference_shape = reference
    offset = np.asarray(segmentation.get("referenceImageExtentOffset", [0, 0, 0]), dtype=int) - reference_start
    return _place_on_reference(labels, offset, reference_shape, path), reference_affine


def distinct_label_values(values: Sequence[int]) -> list[int]:
    """Give every segment its own label value, in segment order.

    A segment keeps its value unless it is not positive or an earlier segment already has it (segments drawn in
    separate layers all have value 1); then it gets the next value above the largest in use. Slicer's module uses
    the same rule, so a ``.seg.nrrd`` gives the same label map in Slicer and on the command line.
    """
    next_free = max(max(values, default=0), 0) + 1
    distinct: list[int] = []
    for value in values:
        if value <= 0 or value in distinct:
            value, next_free = next_free, next_free + 1
        distinct.append(int(value))
    return distinct


def _merge_layers(voxels: np.ndarray, segments: list[dict], path: Path) -> np.ndarray:
    """Merge a (layers, i, j, k) array into one (i, j, k) label map, refusing voxels claimed by two segments."""
    if voxels.ndim == 3:
        voxels = voxels[np.newaxis]
    values = distinct_label_values([int(segment["labelValue"]) for segment in segments])
    if values == [int(segment["labelValue"]) for segment in segments] and len(voxels) == 1:
        return voxels[0]
    labels = np.zeros(voxels.shape[1:], dtype=np.min_scalar_type(max(values)))
    claimed = np.zeros(voxels.shape[1:], dtype=np.uint8)
    for segment, value in zip(segments, values):
        mask = voxels[int(segment.get("layer", 0))] == int(segment["labelValue"])
        labels[mask] = value
        claimed += mask
    if np.any(claimed > 1):
        layered = ", ".join(repr(segment["name"]) for segment in segments if segment.get("layer", 0) > 0)
        raise DENError(
            path,
            f"{int(np.count_nonzero(claimed > 1))} voxels belong to two segments at once (segments in other layers: "
            f"{layered}); DEN needs one label per voxel: remove the overlap or choose the segments to keep",
        )
    return labels


def _reference_geometry(segmentation: dict) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]] | None:
    """Parse the 'Reference image geometry' conversion parameter, if present.

    Returns (voxel-to-RAS affine of the full grid, index of its first voxel, its shape).
    """
    for parameter in segmentation.get("conversionParameters", []):
        if parameter.get("name") == "Reference image geometry" and parameter.get("value"):
            numbers = [float(text) for text in parameter["value"].strip(";").split(";")]
            affine = np.asarray(numbers[:16], dtype=np.float64).reshape(4, 4)
            extent = numbers[16:22]
            start = np.asarray([extent[0], extent[2], extent[4]])
            shape = tuple(int(extent[2 * axis + 1] - extent[2 * axis] + 1) for axis in range(3))
            shift = np.eye(4)
            shift[:3, 3] = start
            return affine @ shift, start.astype(int), shape  # type: ignore[return-value]
    return None


def _place_on_reference(
    labels: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int], path: Path
) -> np.ndarray:
    """Put a cropped label array at ``offset`` inside a zero array of the full reference ``shape``."""
    check_dimensions(shape, path)
    end = offset + np.asarray(labels.shape)
    if np.any(offset < 0) or np.any(end > np.asarray(shape)):
        raise DENError(path, "the stored voxels lie outside the recorded reference image geometry")
    full = np.zeros(shape, dtype=labels.dtype)
    full[offset[0] : end[0], offset[1] : end[1], offset[2] : end[2]] = labels
    return full
