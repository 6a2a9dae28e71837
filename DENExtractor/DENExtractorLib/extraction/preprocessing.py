"""Turning a segmentation (and optionally an MRI) into the stack of 224x224 network inputs, one per slice.

Reference mode reproduces the published pipeline exactly: slices along the first stored voxel axis, each cast to
8-bit (``astype(uint8)``, PIL mode "L"), resized with PIL's bicubic filter to 224x224, then the whole stack divided
by its maximum. Oriented mode reorients to RAS, slices along the chosen anatomical plane, pads each slice to a
physical square, resizes labels by nearest neighbour (no new label values) and divides by a fixed label scale
(``label_max``, default 4), so a label value is the same network input in every case. Image mode feeds the MRI inside the
segmentation instead of the label values, normalised to [0, 1] without 8-bit wrap-around.

Slices without foreground give an all-zero input; only foreground slices are stored and computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import DENError
from ..network.architecture import INPUT_SIZE
from ..settings import CASE_LABEL_MAX, DEFAULT_LABEL_MAX
from ..volume import Volume, check_same_grid

MAX_PADDED_PIXELS = 4096 * 4096
"""Largest slice after padding to a physical square (oriented mode): a header whose spacing ratio would need more
(a 1 KB file can declare a ratio of 100 or more) is refused before anything is allocated."""

PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
"""The RAS axis each plane is perpendicular to."""

IMAGE_PERCENTILES = (0.5, 99.5)
"""Image mode maps these percentiles of the intensities inside the segmentation to 0 and 1 (then clips)."""


@dataclass
class SliceStack:
    """The network inputs of one volume, stored compactly.

    ``resized`` holds one 224x224 image per foreground row (rows listed in ``foreground_rows``); every other row's
    input is all zeros. The network input of a stored image is ``resized / divisor`` in float64, then float32, as
    the published code computed it. ``parameters`` records every preprocessing choice for provenance.
    """

    row_count: int
    foreground_rows: np.ndarray
    resized: np.ndarray
    divisor: float
    parameters: dict = field(default_factory=dict)

    def batch(self, start: int, stop: int) -> np.ndarray:
        """Return the network inputs of stored images ``start:stop`` as (n, 224, 224, 1) float32."""
        images = self.resized[start:stop].astype(np.float64) / self.divisor
        return images.astype(np.float32)[..., np.newaxis]


def preprocess(segmentation: Volume, image: Volume | None = None, mode: str = "reference", plane: str = "axial",
               label_scale: float | str = DEFAULT_LABEL_MAX) -> SliceStack:
    """Build the :class:`SliceStack` of a segmentation in the given mode and plane (plane: oriented mode only).

    ``mode``, ``plane`` and ``label_scale`` (oriented mode's label divisor, or ``"case"`` for the case's largest
    label) are values an :class:`~DENExtractorLib.settings.ExtractionSettings` has validated.
    """
    if image is not None:
        check_same_grid(segmentation, image)
    if mode == "reference":
        return _reference_stack(segmentation, image)
    if mode == "oriented":
        return _oriented_stack(segmentation, image, plane, label_scale)
    raise ValueError(f"unknown mode {mode!r}")


def _reference_stack(segmentation: Volume, image: Volume | None) -> SliceStack:
    """Slices along stored axis 0, resized bicubically by PIL as the published code did."""
    labels = segmentation.data
    rows = _rows_with_foreground(labels, axis=0)
    parameters: dict = {
        "mode": "reference",
        "slice_axis": 0,
        "slice_axis_meaning": "first stored voxel axis (i), as nibabel reads the file; no reorientation",
        "row_to_voxel_index": "row r is voxel index i = r",
        "resize": {"library": "Pillow", "filter": "bicubic", "size": [INPUT_SIZE, INPUT_SIZE]},
    }
    if image is None:
        if labels.max() > 255:
            raise DENError(
                segmentation.source,
                f"label value {labels.max():g} does not fit in 8 bits as reference mode requires: use --mode oriented "
                f"--label-max {labels.max():g}",
            )
        resized = np.stack([_resize_uint8(labels[row]) for row in rows])
        divisor = float(resized.max())
        if divisor == 0:
            raise DENError(segmentation.source, "the foreground is too small to survive resizing to 224x224: every input is 0")
        parameters.update(input="label values", cast="astype(uint8), PIL mode L", normalisation="divide by stack maximum", divisor=divisor)
    else:
        normalised, window = _normalised_image(segmentation, image)
        resized = np.stack([_resize_float(normalised[row], Image.Resampling.BICUBIC) for row in rows])
        divisor = 1.0
        parameters.update(input="image intensities inside the segmentation, zero outside", normalisation=window)
    return SliceStack(int(labels.shape[0]), rows, resized, divisor, parameters)


def _oriented_stack(segmentation: Volume, image: Volume | None, plane: str, label_scale: float | str) -> SliceStack:
    """Reorient to RAS, slice along ``plane``, pad to a physical square, resize without inventing labels."""
    import nibabel.orientations as orientations

    ornt = orientations.io_orientation(segmentation.affine)
    labels = orientations.apply_orientation(segmentation.data, ornt)
    spacing = np.sqrt((segmentation.affine[:3, :3] ** 2).sum(axis=0))[ornt[:, 0].astype(int)]
    axis = PLANE_AXIS[plane]
    in_plane = [a for a in range(3) if a != axis]
    column_spacing, row_spacing = float(spacing[in_plane[0]]), float(spacing[in_plane[1]])
    _check_padded_size(labels.shape[in_plane[1]], labels.shape[in_plane[0]], column_spacing, row_spacing, segmentation.source)
    rows = _rows_with_foreground(labels, axis=axis)
    parameters: dict = {
        "mode": "oriented",
        "plane": plane,
        "reoriented_to": "RAS (nibabel io_orientation, closest canonical axes)",
        "slice_axis_ras": "RAS"[axis],
        "image_axes": f"columns along +{'RAS'[in_plane[0]]}, rows along -{'RAS'[in_plane[1]]} (top row = most {'RAS'[in_plane[1]]})",
        "row_to_voxel_index": _row_to_voxel(ornt, axis, labels.shape[axis]),
        "in_plane_spacing_mm": [column_spacing, row_spacing],
        "square_padding": "zero padding, centred, to equal physical width and height",
    }
    if image is None:
        scale = _label_divisor(labels, label_scale, segmentation.source)
        resized = np.stack([
            _square_resize(_take(labels, axis, row), column_spacing, row_spacing, Image.Resampling.NEAREST) for row in rows
        ])
        parameters.update(input="label values", resize={"library": "Pillow", "filter": "nearest", "size": [INPUT_SIZE] * 2},
                          normalisation=("divide by the case's largest label value" if label_scale == CASE_LABEL_MAX
                                         else "divide by the fixed label scale (label_max), the same in every case"),
                          label_max=label_scale, divisor=scale)
        return SliceStack(int(labels.shape[axis]), rows, resized, scale, parameters)
    normalised, window = _normalised_image(segmentation, image)
    normalised = orientations.apply_orientation(normalised, ornt)
    resized = np.stack([
        np.clip(_square_resize(_take(normalised, axis, row), column_spacing, row_spacing, Image.Resampling.BILINEAR), 0, 1)
        for row in rows
    ])
    parameters.update(input="image intensities inside the segmentation, zero outside",
                      resize={"library": "Pillow", "filter": "bilinear", "size": [INPUT_SIZE] * 2}, normalisation=window)
    return SliceStack(int(labels.shape[axis]), rows, resized, 1.0, parameters)


def _label_divisor(labels: np.ndarray, label_scale: float | str, source: str) -> float:
    """Oriented mode's divisor: the fixed scale (refusing a label above it) or the case's largest label."""
    largest = float(labels.max())
    if label_scale == CASE_LABEL_MAX:
        return largest
    scale = float(label_scale)
    if largest > scale:
        raise DENError(source, f"label value {largest:g} exceeds the label scale {scale:g}: give --label-max "
                               f"{largest:g} (or more) for this label scheme")
    return scale


def _rows_with_foreground(labels: np.ndarray, axis: int) -> np.ndarray:
    """Indices along ``axis`` whose slice has at least one non-zero voxel."""
    other_axes = tuple(a for a in range(labels.ndim) if a != axis)
    return np.flatnonzero(np.any(labels != 0, axis=other_axes)).astype(np.int64)


def _take(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2-D slice at ``index`` along ``axis``, as an image: columns = first remaining axis, top row = last.

    Returns a view, whatever the volume's memory order (``np.take`` would copy a Fortran-ordered volume, as nibabel
    reads NIfTI files, whole for every slice: 50x slower on a 512x512x400 label map).
    """
    return np.rot90(volume[(slice(None),) * axis + (index,)])


def _row_to_voxel(ornt: np.ndarray, ras_axis: int, length: int) -> dict:
    """Describe which stored voxel axis and index each row of the reoriented stack comes from."""
    stored_axis = int(np.flatnonzero(ornt[:, 0] == ras_axis)[0])
    flipped = ornt[stored_axis, 1] < 0
    return {"stored_axis": stored_axis, "indices": [length - 1 - r if flipped else r for r in range(length)]}


def _resize_uint8(slice_2d: np.ndarray) -> np.ndarray:
    """The published step: ``astype(uint8)`` (a PIL mode "L" image), resize to 224x224 with bicubic resampling."""
    picture = Image.fromarray(slice_2d.astype(np.uint8))
    return np.asarray(picture.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC))


def _resize_float(slice_2d: np.ndarray, resample: Image.Resampling) -> np.ndarray:
    """Resize a float slice to 224x224 in PIL mode "F" (no 8-bit rounding), clipped to [0, 1]."""
    picture = Image.fromarray(np.ascontiguousarray(slice_2d, dtype=np.float32))
    return np.clip(np.asarray(picture.resize((INPUT_SIZE, INPUT_SIZE), resample)), 0.0, 1.0)


def _padded_shape(height: int, width: int, column_spacing: float, row_spacing: float) -> tuple[int, int]:
    """Height and width of a slice zero-padded to equal physical height and width."""
    side_mm = max(height * row_spacing, width * column_spacing)
    return max(height, round(side_mm / row_spacing)), max(width, round(side_mm / column_spacing))


def _check_padded_size(height: int, width: int, column_spacing: float, row_spacing: float, source: str) -> None:
    """Refuse voxel spacings so unequal that padding a slice to a physical square would need a huge image."""
    padded_height, padded_width = _padded_shape(height, width, column_spacing, row_spacing)
    if padded_height * padded_width > MAX_PADDED_PIXELS:
        raise DENError(
            source,
            f"in-plane voxel spacings {column_spacing:g} x {row_spacing:g} mm are too unequal: a {height}x{width} slice "
            f"would pad to {padded_height}x{padded_width} pixels (limit {MAX_PADDED_PIXELS} pixels); check the header's spacing",
        )


def _square_resize(slice_2d: np.ndarray, column_spacing: float, row_spacing: float, resample: Image.Resampling) -> np.ndarray:
    """Zero-pad a slice to equal physical height and width, then resize it to 224x224 in PIL mode "F"."""
    height, width = slice_2d.shape
    target_height, target_width = _padded_shape(height, width, column_spacing, row_spacing)
    top, left = (target_height - height) // 2, (target_width - width) // 2
    padded = np.zeros((target_height, target_width), dtype=np.float32)
    padded[top : top + height, left : left + width] = slice_2d
    picture = Image.fromarray(padded)
    return np.asarray(picture.resize((INPUT_SIZE, INPUT_SIZE), resample))


def _normalised_image(segmentation: Volume, image: Volume) -> tuple[np.ndarray, dict]:
    """Image intensities inside the segmentation mapped to [0, 1] by robust percentiles, zero outside."""
    mask = segmentation.data != 0
    inside = np.asarray(image.data[mask], dtype=np.float64)
    low, high = (float(v) for v in np.percentile(inside, IMAGE_PERCENTILES))
    normalised = np.zeros(image.shape, dtype=np.float32)
    if high > low:
        normalised[mask] = np.clip((inside - low) / (high - low), 0.0, 1.0)
    else:
        normalised[mask] = 1.0
    window = {
        "method": "inside the segmentation: (x - p_low) / (p_high - p_low), clipped to [0, 1]; 0 outside",
        "percentiles": list(IMAGE_PERCENTILES),
        "p_low": low,
        "p_high": high,
        "image": image.source,
        "image_sha256": image.sha256,
    }
    return normalised, window
