"""Reading a DICOM image series (a folder of single-frame CT or MR files, as scanners and TCIA deliver them) as
one volume in nibabel's (i, j, k) order with a voxel-to-RAS affine.

Headers first: every file must belong to the same series, share one orientation, pixel grid and pixel type, and
the planes must be evenly spaced with none missing; the voxels the headers declare are checked against the memory
bound before a single pixel is decoded. i runs along a row (the column index), j down the columns (the row
index), k along the normal from the lowest plane: a NIfTI of the same image holds the same array.
Stored values are rescaled (each file's Rescale Slope and Intercept, computed in float64, kept as float32) where
any file says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..volume import check_dimensions
from .dicom_files import (
    SEGMENTATION_STORAGE,
    DicomFile,
    even_positions,
    files_inside,
    numbers,
    plane_axes,
    read_header,
    read_pixels,
    refuse_rtstruct,
    stack_affine,
)
from .limits import exceeds_limit


@dataclass(frozen=True)
class SeriesGrid:
    """A series' geometry, for placing a DICOM SEG on it: its UID, plane axes, pixel spacing, first plane's
    position, plane spacing, plane count and shape (i, j, k)."""

    series_uid: str
    row: np.ndarray
    column: np.ndarray
    normal: np.ndarray
    spacing: np.ndarray
    first: np.ndarray
    slice_spacing: float
    shape: tuple[int, int, int]


def read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray, str, SeriesGrid]:
    """Return (data (i, j, k), voxel-to-RAS affine, sha256 of every file read, grid) of a DICOM series folder."""
    headers = [read_header(path) for path in files_inside(folder)]
    for dicom in headers:
        refuse_rtstruct(dicom)
        if dicom.sop_class == SEGMENTATION_STORAGE:
            raise DENError(dicom.path, "a DICOM SEG is a segmentation: give it as the segmentation, and the image "
                                       "series folder as --image")
    grid, order = _series_grid(headers, folder)
    first = headers[0].header
    stored = np.dtype(f"{'i' if int(first.get('PixelRepresentation', 0)) else 'u'}{int(first.BitsAllocated) // 8}")
    scales = {dicom.path: _rescale(dicom) for dicom in headers}
    rescaled = any(scale != (1.0, 0.0) for scale in scales.values())
    voxels = int(np.prod(grid.shape, dtype=np.int64))
    problem = exceeds_limit(voxels * (4 if rescaled else stored.itemsize))
    if problem:
        raise DENError(folder, problem)
    planes = np.empty(grid.shape[::-1], dtype=np.float32 if rescaled else stored)  # (k, rows, columns)
    hasher = hashlib.sha256()
    for dicom in headers:  # in name order, as folder_sha256 hashes them
        pixels = read_pixels(dicom, hasher)
        if pixels.shape != planes.shape[1:]:
            raise DENError(dicom.path, f"pixel data of shape {pixels.shape}, where the header declares "
                                       f"{grid.shape[1]} x {grid.shape[0]}")
        slope, intercept = scales[dicom.path]
        planes[order[dicom.path]] = (pixels.astype(np.float64) * slope + intercept) if rescaled else pixels
    data = planes.transpose(2, 1, 0)  # (i = column, j = row, k), laid out in memory as nibabel holds a NIfTI
    affine = stack_affine(grid.row, grid.column, grid.normal, grid.spacing, grid.first, grid.slice_spacing)
    return data, affine, hasher.hexdigest(), grid


def _series_grid(headers: list[DicomFile], folder: Path) -> tuple[SeriesGrid, dict[Path, int]]:
    """The series' geometry from its headers, and each file's plane index; refuses mixed series or grids."""
    first = headers[0].header
    uids = {str(dicom.header.get("SeriesInstanceUID", "")) for dicom in headers}
    if len(uids) != 1:
        raise DENError(folder, f"the folder holds {len(uids)} series: give the folder of one image series")
    for dicom in headers:
        header = dicom.header
        if int(header.get("NumberOfFrames", 1) or 1) != 1:
            raise DENError(dicom.path, "a multi-frame image: DEN reads series of single-frame CT or MR files")
        if int(header.get("SamplesPerPixel", 1)) != 1:
            raise DENError(dicom.path, "a colour image: DEN needs one value per voxel")
        for name in ("Rows", "Columns", "BitsAllocated", "PixelRepresentation"):
            if header.get(name) != first.get(name):
                raise DENError(dicom.path, f"its {name} differs from {headers[0].path.name}'s: not one pixel grid")
        if int(header.get("BitsAllocated", 0)) not in (8, 16, 32):
            raise DENError(dicom.path, f"{header.get('BitsAllocated')} bits per pixel: DEN reads 8, 16 or 32")
    row, column, normal = plane_axes(first.get("ImageOrientationPatient"), headers[0].path)
    spacing = numbers(first.get("PixelSpacing"), 2, "Pixel Spacing", headers[0].path)
    positions = []
    for dicom in headers:
        other = plane_axes(dicom.header.get("ImageOrientationPatient"), dicom.path)
        if np.max(np.abs(np.concatenate(other[:2]) - np.concatenate([row, column]))) > 1e-4:
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
    grid = SeriesGrid(uids.pop(), row, column, normal, spacing, positions[by_offset[0]], slice_spacing, shape)
    return grid, order


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
