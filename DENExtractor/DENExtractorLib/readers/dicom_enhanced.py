"""Reading an enhanced (multi-frame) MR or CT image, one file holding every plane (as recent scanners, archive
conversions and highdicom's legacy converter write them), as one volume in nibabel's (i, j, k) order; decoded by
highdicom (``Image.get_volume``), which places each frame by its Plane Position and applies each frame's Pixel
Value Transformation (rescale slope and intercept).

Headers first: one grey sample per pixel, the declared frames within :data:`~.dicom_files.MAX_FRAMES`, the file's
size fitting the pixels it declares, the frames forming one stack of evenly spaced planes with none missing, and
the decoded volume within the memory bound, before a pixel is decoded. The axes are those the series reader gives
a folder of single-frame files (i along a row, j down a column, k along the normal from the lowest plane), and
the values float32 computed in float64: the same array as the single-frame series the file was converted from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from ..volume import check_dimensions
from .dicom_files import (
    MAX_FRAMES,
    DicomFile,
    check_declared_pixels,
    ijk_affine,
    ijk_array,
    in_normal_order,
    quietly,
    read_dataset,
)
from .limits import exceeds_limit

DECODED_BYTES_PER_VOXEL = 8 + 4
"""What decoding costs per voxel: highdicom's float64 volume and the float32 copy DEN keeps."""


def is_multi_frame(dicom: DicomFile) -> bool:
    """Whether a file is an enhanced (multi-frame) image: several frames, or per-frame functional groups."""
    header = dicom.header
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DENError(dicom.path, "the header's Number of Frames is not a number") from None
    return frames > 1 or "PerFrameFunctionalGroupsSequence" in header


def enhanced_grid(dicom: DicomFile) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape (i, j, k), voxel-to-RAS affine) of an enhanced image, from its header alone; checks the declared
    pixels against the file's size and the memory bound."""
    header, path = dicom.header, dicom.path
    try:
        frames, rows, columns = int(header.get("NumberOfFrames", 1) or 1), int(header.Rows), int(header.Columns)
        bits, samples = int(header.BitsAllocated), int(header.get("SamplesPerPixel", 1))
    except (AttributeError, TypeError, ValueError):
        raise DENError(path, "the header lacks a valid Number of Frames, Rows, Columns or Bits Allocated") from None
    if samples != 1:
        raise DENError(path, "a colour image: DEN needs one value per voxel")
    if frames > MAX_FRAMES:
        raise DENError(path, f"the header declares {frames} frames, more than the {MAX_FRAMES} DEN reads in one file")
    if frames < 1 or rows < 1 or columns < 1 or bits not in (8, 16, 32):
        raise DENError(path, f"invalid declared size: {frames} frames of {rows} x {columns}, {bits} bits")
    check_dimensions((columns, rows, frames), path)
    problem = exceeds_limit(frames * rows * columns * DECODED_BYTES_PER_VOXEL)
    if problem:
        raise DENError(path, f"{frames} frames of {rows} x {columns}: {problem}")
    check_declared_pixels(dicom, frames, rows, columns, bits)
    geometry = _geometry(_highdicom_image(header, path), path)
    shape = tuple(int(n) for n in geometry.spatial_shape)
    return (shape[2], shape[1], shape[0]), ijk_affine(geometry)


def read_enhanced(dicom: DicomFile, hasher: Any) -> tuple[np.ndarray, np.ndarray]:
    """(data (i, j, k) float32, voxel-to-RAS affine) of an enhanced image whose header :func:`enhanced_grid`
    checked; every byte read goes into ``hasher``."""
    image = _highdicom_image(read_dataset(dicom, hasher), dicom.path)
    _geometry(image, dicom.path)
    try:
        with quietly():
            volume = image.get_volume(dtype=np.float64)
    except Exception as error:  # undecodable, truncated or missing frames
        raise DENError(dicom.path, f"the pixel data cannot be read: truncated, corrupt, a plane missing or "
                                   f"compressed in a way that cannot be decoded here ({describe_error(error)})") from None
    volume = in_normal_order(volume)
    return ijk_array(volume).astype(np.float32), ijk_affine(volume)


def _highdicom_image(dataset: Any, path: Path) -> Any:
    """The dataset as a highdicom ``Image`` (its frame descriptions indexed); one line for what it refuses."""
    import highdicom

    try:
        with quietly():
            return highdicom.Image.from_dataset(dataset, copy=False)
    except Exception as error:  # highdicom raises ValueError, AttributeError, KeyError... on malformed files
        raise DENError(path, f"an enhanced image highdicom cannot read ({describe_error(error)})") from None


def _geometry(image: Any, path: Path) -> Any:
    """The stack of planes the frames form, in normal order; refused when they form none (a plane missing, frames
    between planes or differently oriented)."""
    try:
        with quietly():
            geometry = image.get_volume_geometry()
    except Exception as error:  # inconsistent orientations or pixel spacings across frames
        geometry, detail = None, f" ({describe_error(error)})"
    else:
        detail = ""
    if geometry is None:
        raise DENError(path, f"its frames do not form one stack of evenly spaced planes with none missing{detail}: "
                             "DEN needs a regular grid")
    return in_normal_order(geometry)
