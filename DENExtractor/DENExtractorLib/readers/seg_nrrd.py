"""Reading 3D Slicer ``.seg.nrrd`` segmentations as one label map with the segments' own label values.

slicerio parses the segment metadata from the header only; the voxels are read by :mod:`.nrrd_payload`, bounded
by the declared size. The stored voxels may be cropped to the segments' extent; they are placed back on the full
reference image geometry the file records, so that a ``.seg.nrrd`` and a NIfTI of the same labels give the same
grid (and so the same features). Layers (overlapping segments) are merged when no voxel is claimed by two segments,
and refused otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..volume import check_dimensions, distinct_label_values
from .nrrd import nrrd_affine
from .nrrd_payload import open_nrrd

REFERENCE_GEOMETRY = "Reference image geometry"


def read_segmentation_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (label map in i, j, k order, voxel-to-RAS affine, sha256 of what was read) of a ``.seg.nrrd`` file."""
    import slicerio

    with open_nrrd(path) as nrrd_file:
        try:  # the metadata are parsed from the header lines already read: one read of the file
            segmentation = slicerio.read_segmentation(nrrd_file.lines, skip_voxels=True)
        except Exception as error:  # slicerio raises IOError, ValueError, KeyError... on malformed metadata
            raise DENError(path, f"not a readable Slicer segmentation ({describe_error(error)})") from None
        segments = segmentation.get("segments", [])
        _check_segments(segments, path)
        sizes = tuple(int(n) for n in np.atleast_1d(nrrd_file.header.get("sizes", [])))
        layered = len(sizes) == 4
        check_dimensions(sizes[1:] if layered else sizes, path)
        affine = nrrd_affine(nrrd_file.header, path, spatial_axes=range(1, 4) if layered else range(3))
        voxels = nrrd_file.read_voxels()
    labels = _merge_layers(voxels, segments, path)
    reference = _reference_geometry(segmentation, path)
    if reference is None:
        return labels, affine, nrrd_file.sha256
    reference_affine, reference_start, reference_shape = reference
    offset = np.asarray(segmentation.get("referenceImageExtentOffset", [0, 0, 0]), dtype=int) - reference_start
    return _place_on_reference(labels, offset, reference_shape, path), reference_affine, nrrd_file.sha256


def _check_segments(segments: list[dict], path: Path) -> None:
    """Refuse segments without a usable label value or layer (negative values would be silently dropped)."""
    if not segments:
        raise DENError(path, "the segmentation has no segments")
    for segment in segments:
        name = segment.get("name", segment.get("id", "?"))
        try:
            value, layer = int(segment["labelValue"]), int(segment.get("layer", 0))
        except (KeyError, TypeError, ValueError):
            raise DENError(path, f"segment {name!r} has no valid label value or layer") from None
        if value <= 0:
            raise DENError(path, f"segment {name!r} has label value {value}: label values must be positive")
        if layer < 0:
            raise DENError(path, f"segment {name!r} has layer {layer}: layers must be 0 or positive")


def _merge_layers(voxels: np.ndarray, segments: list[dict], path: Path) -> np.ndarray:
    """Merge a (layers, i, j, k) array into one (i, j, k) label map, refusing voxels claimed by two segments."""
    if voxels.ndim == 3:
        voxels = voxels[np.newaxis]
    stored = [int(segment["labelValue"]) for segment in segments]
    values = distinct_label_values(stored)
    if values == stored and len(voxels) == 1:
        return voxels[0]
    labels = np.zeros(voxels.shape[1:], dtype=np.min_scalar_type(max(values)))
    claimed = np.zeros(voxels.shape[1:], dtype=np.min_scalar_type(len(segments)))  # cannot wrap
    for segment, value in zip(segments, values, strict=True):
        layer = int(segment.get("layer", 0))
        if layer >= len(voxels):
            raise DENError(path, f"segment {segment.get('name')!r} is in layer {layer}, but the file has {len(voxels)}")
        mask = voxels[layer] == int(segment["labelValue"])
        labels[mask] = value
        claimed += mask
    if np.any(claimed > 1):
        layered = ", ".join(repr(segment.get("name")) for segment in segments if int(segment.get("layer", 0)) > 0)
        raise DENError(
            path,
            f"{int(np.count_nonzero(claimed > 1))} voxels belong to two segments at once"
            + (f" (segments in other layers: {layered})" if layered else "")
            + "; DEN needs one label per voxel: remove the overlap or choose the segments to keep",
        )
    return labels


def _reference_geometry(segmentation: dict, path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]] | None:
    """Parse the 'Reference image geometry' conversion parameter, if present.

    It holds 16 numbers of the voxel-to-RAS matrix and 6 of the extent; returns (voxel-to-RAS affine of the full
    grid, index of its first voxel, its shape). A malformed string is refused with a plain sentence.
    """
    for parameter in segmentation.get("conversionParameters", []):
        if parameter.get("name") == REFERENCE_GEOMETRY and parameter.get("value"):
            try:
                numbers = [float(text) for text in str(parameter["value"]).strip().strip(";").split(";")]
            except ValueError:
                numbers = []
            if len(numbers) != 22 or not np.all(np.isfinite(numbers)):
                raise DENError(path, f"the '{REFERENCE_GEOMETRY}' is malformed: expected 22 numbers (matrix and "
                                     "extent)")
            affine = np.asarray(numbers[:16], dtype=np.float64).reshape(4, 4)
            extent = [round(value) for value in numbers[16:22]]
            start = np.asarray([extent[0], extent[2], extent[4]])
            shape = tuple(extent[2 * axis + 1] - extent[2 * axis] + 1 for axis in range(3))
            check_dimensions(shape, path)
            shift = np.eye(4)
            shift[:3, 3] = start
            return affine @ shift, start.astype(int), shape  # type: ignore[return-value]
    return None


def _place_on_reference(labels: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int], path: Path) -> np.ndarray:
    """Put a cropped label array at ``offset`` inside a zero array of the full reference ``shape``."""
    end = offset + np.asarray(labels.shape)
    if np.any(offset < 0) or np.any(end > np.asarray(shape)):
        raise DENError(path, "the stored voxels lie outside the recorded reference image geometry")
    full = np.zeros(shape, dtype=labels.dtype)
    full[offset[0] : end[0], offset[1] : end[1], offset[2] : end[2]] = labels
    return full
