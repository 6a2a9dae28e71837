"""Reading a DICOM image series (a folder of single-frame CT or MR files, as scanners and TCIA deliver them, or one
enhanced multi-frame file: :mod:`.dicom_enhanced`) as one volume in nibabel's (i, j, k) order with a voxel-to-RAS
affine.

Headers first: every image file must belong to one series (a folder of several is refused, each series listed
with its UID, description and number of files, unless one is chosen by its Series Instance UID: ``--series``),
share one orientation, pixel grid and pixel type, and the planes must be evenly spaced with none missing; each
file's size must fit the pixels it declares, and the voxels the headers declare are checked against the memory
bound before a single pixel is decoded. A DICOM SEG or RTSTRUCT stored beside the images is not an image of the
series: it is left out (its bytes still hashed when the folder is read whole). i runs along a row (the column
index), j down the columns (the row index), k along the normal from the lowest plane: a NIfTI of the same image
holds the same array.
Stored values are rescaled (each file's Rescale Slope and Intercept, computed in float64, kept as float32) where
any file says so."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError
from ..volume import check_dimensions
from .dicom_enhanced import enhanced_grid, is_multi_frame, read_enhanced
from .dicom_files import (
    ORIENTATION_TOLERANCE,
    RT_STRUCTURE_SET_STORAGE,
    SEG_SOP_CLASSES,
    DicomFile,
    check_declared_pixels,
    even_positions,
    files_inside,
    numbers,
    plane_axes,
    read_header,
    read_pixels,
    stack_affine,
)
from .limits import exceeds_limit


def read_dicom_series(folder: Path, series: str | None = None) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Return (data (i, j, k), voxel-to-RAS affine, sha256 of every file read, Series Instance UID) of a DICOM
    series folder (of ``series`` where the folder holds several): single-frame files, or one enhanced file."""
    headers, others = _image_headers(folder, series)
    enhanced = _enhanced_file(headers)
    hasher = hashlib.sha256()  # every file in name order, as folder_sha256 hashes them
    if enhanced is not None:
        series_uid, _, _, _ = _enhanced_grid(enhanced)  # its header checked before a pixel is decoded
        _hash_files([path for path in others if path < enhanced.path], hasher)
        data, affine = read_enhanced(enhanced, hasher)
        _hash_files([path for path in others if path > enhanced.path], hasher)
        return data, affine, hasher.hexdigest(), series_uid
    series_uid, shape, affine, order = _series_grid(headers, folder)
    first = headers[0].header
    stored = np.dtype(f"{'i' if int(first.get('PixelRepresentation', 0)) else 'u'}{int(first.BitsAllocated) // 8}")
    scales = {dicom.path: _rescale(dicom) for dicom in headers}
    rescaled = any(scale != (1.0, 0.0) for scale in scales.values())
    problem = exceeds_limit(int(np.prod(shape, dtype=np.int64)) * (4 if rescaled else stored.itemsize))
    if problem:
        raise DENError(folder, problem)
    planes = np.empty(shape[::-1], dtype=np.float32 if rescaled else stored)  # (k, rows, columns)
    for path in sorted([dicom.path for dicom in headers] + others):
        if path in others:
            _hash_files([path], hasher)
            continue
        dicom = next(dicom for dicom in headers if dicom.path == path)
        pixels = read_pixels(dicom, hasher)
        if pixels.shape != planes.shape[1:]:
            raise DENError(dicom.path, f"pixel data of shape {pixels.shape}, where the header declares "
                                       f"{shape[1]} x {shape[0]}")
        slope, intercept = scales[dicom.path]
        planes[order[dicom.path]] = (pixels.astype(np.float64) * slope + intercept) if rescaled else pixels
    data = planes.transpose(2, 1, 0)  # (i = column, j = row, k), laid out in memory as nibabel holds a NIfTI
    return data, affine, hasher.hexdigest(), series_uid


def read_series_grid(folder: Path, series: str | None = None) -> tuple[str, tuple[int, int, int], np.ndarray]:
    """(Series Instance UID, shape (i, j, k), voxel-to-RAS affine) of a DICOM series folder (of ``series`` where it
    holds several), from its headers alone (for placing a DICOM SEG on its grid without reading its pixels)."""
    headers = _image_headers(folder, series)[0]
    enhanced = _enhanced_file(headers)
    series_uid, shape, affine, _ = _series_grid(headers, folder) if enhanced is None else _enhanced_grid(enhanced)
    return series_uid, shape, affine


def series_planes(folder: Path, series: str | None = None) -> tuple[str, tuple[int, int, int], np.ndarray, list]:
    """(Series Instance UID, shape (i, j, k), voxel-to-RAS affine, the files' headers in plane order) of a series
    of single-frame files, from its headers alone (for rasterising an RTSTRUCT's contours on its images)."""
    headers = _image_headers(folder, series)[0]
    enhanced = _enhanced_file(headers)
    if enhanced is not None:
        raise DENError(enhanced.path, "an enhanced (multi-frame) image: DEN reads an RTSTRUCT on a series of "
                                      "single-frame files, whose images its contours reference")
    series_uid, shape, affine, order = _series_grid(headers, folder)
    return series_uid, shape, affine, [dicom.header for dicom in sorted(headers, key=lambda dicom: order[dicom.path])]


def series_sha256(folder: Path, series: str) -> str:
    """The sha256 the series reader records for one series chosen from a folder of several: every byte of that
    series' files, in name order (the other series and segmentation objects are not read)."""
    hasher = hashlib.sha256()
    _hash_files(sorted(dicom.path for dicom in _image_headers(folder, series)[0]), hasher)
    return hasher.hexdigest()


def _hash_files(paths: list[Path], hasher: Any) -> None:
    """Every byte of ``paths``, in order, into ``hasher`` (a megabyte at a time)."""
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)


def _image_headers(folder: Path, series: str | None) -> tuple[list[DicomFile], list[Path]]:
    """The headers of a series folder's image files (of ``series`` when one is chosen), and the paths of the
    segmentation objects (SEG, RTSTRUCT) stored beside them, which are not images of the series (hashed when the
    folder is read whole; not read at all when a series is chosen)."""
    images, others = [], []
    for path in files_inside(folder):
        dicom = read_header(path)
        if dicom.sop_class in (*SEG_SOP_CLASSES, RT_STRUCTURE_SET_STORAGE):
            others.append(path)
        else:
            images.append(dicom)
    if not images:
        raise DENError(folder, f"the folder holds {len(others)} segmentation object(s) and no image: expected the "
                               "DICOM files of one image series")
    if series is None:
        if len({_series_uid(dicom) for dicom in images}) > 1:
            raise DENError(folder, f"the folder holds {len({_series_uid(dicom) for dicom in images})} image series, "
                                   f"{_described(images)}: choose one with --series UID (a 'series' column in a cases "
                                   "CSV)")
        return images, others
    chosen = [dicom for dicom in images if _series_uid(dicom) == series]
    if not chosen:
        raise DENError(folder, f"no image series {series} here; the folder holds {_described(images)}")
    return chosen, []


def _enhanced_file(headers: list[DicomFile]) -> DicomFile | None:
    """The one enhanced (multi-frame) file of a series, or None for a series of single-frame files; a series
    mixing them, or of several enhanced files, is refused."""
    enhanced = [dicom for dicom in headers if is_multi_frame(dicom)]
    if not enhanced:
        return None
    if len(headers) > 1:
        raise DENError(enhanced[0].path, f"an enhanced (multi-frame) image in a series of {len(headers)} files: DEN "
                                         "reads an enhanced series stored as one file, or a series of single-frame "
                                         "files")
    return enhanced[0]


def _enhanced_grid(dicom: DicomFile) -> tuple[str, tuple[int, int, int], np.ndarray, dict[Path, int]]:
    """:func:`_series_grid`'s answer for a series stored as one enhanced file."""
    shape, affine = enhanced_grid(dicom)
    return _series_uid(dicom), shape, affine, {}


def _series_grid(headers: list[DicomFile], folder: Path) -> tuple[str, tuple[int, int, int], np.ndarray,
                                                                  dict[Path, int]]:
    """The series' UID, shape (i, j, k) and voxel-to-RAS affine from its headers, and each file's plane index;
    refuses mixed grids."""
    first = headers[0].header
    for dicom in headers:
        _check_pixel_format(dicom, headers[0])
    row, column, normal = plane_axes(first.get("ImageOrientationPatient"), headers[0].path)
    spacing = numbers(first.get("PixelSpacing"), 2, "Pixel Spacing", headers[0].path)
    positions = []
    for dicom in headers:
        other = plane_axes(dicom.header.get("ImageOrientationPatient"), dicom.path)
        if np.max(np.abs(np.concatenate(other[:2]) - np.concatenate([row, column]))) > ORIENTATION_TOLERANCE:
            raise DENError(dicom.path, "its orientation differs from the other files': not one series")
        if np.max(np.abs(numbers(dicom.header.get("PixelSpacing"), 2, "Pixel Spacing", dicom.path) - spacing)) > 1e-6:
            raise DENError(dicom.path, "its pixel spacing differs from the other files': not one series")
        positions.append(numbers(dicom.header.get("ImagePositionPatient"), 3, "Image Position (Patient)", dicom.path))
    offsets = np.asarray([position @ normal for position in positions])
    by_offset = np.argsort(offsets, kind="stable")
    slice_spacing, _ = even_positions(offsets[by_offset], folder, allow_gaps=False)
    shape = (int(first.Columns), int(first.Rows), len(headers))
    check_dimensions(shape, folder)
    order = {headers[index].path: plane for plane, index in enumerate(by_offset)}
    affine = stack_affine(row, column, normal, spacing, positions[by_offset[0]], slice_spacing)
    return _series_uid(headers[0]), shape, affine, order


def _check_pixel_format(dicom: DicomFile, first: DicomFile) -> None:
    """One file's pixel format: a single grey frame of the first file's size and type, and a file size that fits
    the pixels it declares (checked before any is read)."""
    header = dicom.header
    for name in ("Rows", "Columns", "BitsAllocated"):
        if not isinstance(header.get(name), int):
            raise DENError(dicom.path, f"the header lacks a valid {name}: not an image DEN can read")
    if int(header.get("SamplesPerPixel", 1)) != 1:
        raise DENError(dicom.path, "a colour image: DEN needs one value per voxel")
    for name in ("Rows", "Columns", "BitsAllocated", "PixelRepresentation"):
        if header.get(name) != first.header.get(name):
            raise DENError(dicom.path, f"its {name} differs from {first.path.name}'s: not one pixel grid")
    if int(header.BitsAllocated) not in (8, 16, 32):
        raise DENError(dicom.path, f"{header.BitsAllocated} bits per pixel: DEN reads 8, 16 or 32")
    check_declared_pixels(dicom, 1, int(header.Rows), int(header.Columns), int(header.BitsAllocated))


def _series_uid(dicom: DicomFile) -> str:
    """A file's Series Instance UID ("" when it has none)."""
    return str(dicom.header.get("SeriesInstanceUID", ""))


def _described(headers: list[DicomFile]) -> str:
    """Each series among ``headers``: its UID, Series Description and number of files, for a refusal."""
    counts: dict[str, list] = {}
    for dicom in headers:
        uid = str(dicom.header.get("SeriesInstanceUID", "")) or "no Series Instance UID"
        entry = counts.setdefault(uid, [str(dicom.header.get("SeriesDescription", "")) or "no description", 0])
        entry[1] += 1
    return "; ".join(f"{uid} ({description!r}, {count} files)" for uid, (description, count) in sorted(counts.items()))


def _rescale(dicom: DicomFile) -> tuple[float, float]:
    """A file's Rescale Slope and Intercept (1 and 0 when absent)."""
    try:
        slope = float(dicom.header.get("RescaleSlope", 1) or 1)
        intercept = float(dicom.header.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        slope = intercept = float("nan")
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise DENError(dicom.path, "invalid Rescale Slope/Intercept")
    return slope, intercept
