"""Reading a DICOM SEG (a segmentation object, as 3D Slicer, OHIF and highdicom write them) as one label map whose
values are the segment numbers, on the grid of its image series.

Headers first: the SOP class, the segmentation type (BINARY or LABELMAP; FRACTIONAL is refused), the declared
frames against the memory bound and against the file's size (a truncated file is refused before decoding), every
frame described by its per-frame functional groups, and, when the image series is given, that the SEG references
that very series and that each frame lies on its grid. Without the series, the grid is the SEG's own: its frames'
plane positions, empty planes between them filled as background (a SEG that omits empty frames then spans only
its segments' extent).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError
from ..volume import check_dimensions
from .dicom_files import (
    SEGMENTATION_STORAGE,
    DicomFile,
    even_positions,
    numbers,
    plane_axes,
    read_header,
    read_pixels,
    refuse_rtstruct,
    stack_affine,
)
from .dicom_series import SeriesGrid
from .limits import exceeds_limit

UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
SEGMENT_TYPES = ("BINARY", "LABELMAP")


def read_dicom_seg(path: Path, grid: SeriesGrid | None = None) -> tuple[np.ndarray, np.ndarray, str, list[dict]]:
    """Return (label map (i, j, k) of segment numbers, voxel-to-RAS affine, file sha256, the segments as
    ``{"number", "label"}``) of a DICOM SEG; on ``grid`` (its image series) when given."""
    dicom = read_header(path)
    refuse_rtstruct(dicom)
    if dicom.sop_class != SEGMENTATION_STORAGE:
        raise DENError(path, f"not a DICOM SEG (SOP class {dicom.sop_class}); an image series is given as a "
                             "folder with --image")
    header = dicom.header
    kind = str(header.get("SegmentationType", ""))
    if kind not in SEGMENT_TYPES:
        raise DENError(path, f"segmentation type {kind or 'missing'}: DEN reads BINARY and LABELMAP SEGs (threshold "
                             "a FRACTIONAL one into a BINARY SEG or a label map first)")
    frames, rows, columns = _declared_size(dicom)
    segments = _segments(header, path)
    planes = _frame_planes(header, frames, kind, {segment["number"] for segment in segments}, path)
    if grid is not None:
        _check_reference(header, grid, path)
    shape, affine, plane_of = _placement(header, planes, rows, columns, grid, path)
    dtype = np.min_scalar_type(max(segment["number"] for segment in segments))
    problem = exceeds_limit(int(np.prod(shape, dtype=np.int64)) * (dtype.itemsize + 1) + frames * rows * columns)
    if problem:
        raise DENError(path, problem)
    hasher = hashlib.sha256()
    pixels = read_pixels(dicom, hasher).reshape(frames, rows, columns)
    planes_kji = np.zeros(shape[::-1], dtype=dtype)  # (k, rows, columns): one frame is one contiguous plane
    claimed = np.zeros(shape[::-1], dtype=bool)
    for frame, (_, segment) in enumerate(planes):
        mask = pixels[frame] != 0
        plane = plane_of[frame]
        overlap = int(np.count_nonzero(mask & claimed[plane]))
        if overlap:
            raise DENError(path, f"{overlap} voxels belong to two segments at once; DEN needs one label per voxel: "
                                 "remove the overlap or keep one segment")
        claimed[plane] |= mask
        planes_kji[plane][mask] = segment if kind == "BINARY" else pixels[frame][mask]
    values = planes_kji.transpose(2, 1, 0)  # (i = column, j = row, k), laid out in memory as nibabel holds a NIfTI
    unknown = sorted(set(np.unique(values).tolist()) - {0} - {segment["number"] for segment in segments})
    if unknown:
        raise DENError(path, f"pixel value(s) {unknown[:5]} name no segment the SEG describes")
    return values, affine, hasher.hexdigest(), segments


def _declared_size(dicom: DicomFile) -> tuple[int, int, int]:
    """(frames, rows, columns) the header declares, checked against the memory bound and the file's size."""
    header, path = dicom.header, dicom.path
    try:
        frames, rows, columns = int(header.get("NumberOfFrames", 1)), int(header.Rows), int(header.Columns)
        bits = int(header.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        raise DENError(path, "the header lacks a valid Number of Frames, Rows, Columns or Bits Allocated") from None
    if frames < 1 or rows < 1 or columns < 1 or bits not in (1, 8, 16):
        raise DENError(path, f"invalid declared size: {frames} frames of {rows} x {columns}, {bits} bits")
    check_dimensions((columns, rows, 1), path)
    problem = exceeds_limit(frames * rows * columns * max(1, bits // 8))
    if problem:
        raise DENError(path, f"{frames} frames of {rows} x {columns}: {problem}")
    syntax = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", ""))
    needed = (frames * rows * columns * bits + 7) // 8
    size = path.stat().st_size
    if syntax in UNCOMPRESSED and size < needed:
        raise DENError(path, f"truncated: the header declares {frames} frames ({needed} bytes of pixel data), the "
                             f"file holds {size} bytes")
    return frames, rows, columns


def _segments(header: Any, path: Path) -> list[dict]:
    """The segments the SEG describes: number (the label value DEN uses) and label."""
    segments = []
    for item in header.get("SegmentSequence", []):
        try:
            number = int(item.SegmentNumber)
        except (AttributeError, TypeError, ValueError):
            raise DENError(path, "a segment without a valid Segment Number") from None
        if number < 1:
            raise DENError(path, f"segment number {number}: segment numbers must be positive")
        segments.append({"number": number, "label": str(item.get("SegmentLabel", ""))})
    if not segments:
        raise DENError(path, "the SEG describes no segments")
    if len({segment["number"] for segment in segments}) != len(segments):
        raise DENError(path, "two segments share one Segment Number")
    return segments


def _frame_planes(header: Any, frames: int, kind: str, numbers_known: set[int], path: Path) -> list[tuple[Any, int]]:
    """Each frame's functional groups and segment number (0 for a LABELMAP frame); refuses missing frames."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != frames:
        raise DENError(path, f"the header declares {frames} frames but describes {len(per_frame)}: frames are missing")
    planes = []
    for number, groups in enumerate(per_frame, start=1):
        segment = 0
        if kind == "BINARY":
            try:
                segment = int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            except (AttributeError, IndexError, TypeError, ValueError):
                raise DENError(path, f"frame {number} names no segment") from None
            if segment not in numbers_known:
                raise DENError(path, f"frame {number} belongs to segment {segment}, which the SEG does not describe")
        planes.append((groups, segment))
    return planes


def _check_reference(header: Any, grid: SeriesGrid, path: Path) -> None:
    """The SEG must reference the image series it is paired with."""
    referenced = {str(item.get("SeriesInstanceUID", "")) for item in header.get("ReferencedSeriesSequence", [])}
    if grid.series_uid not in referenced:
        named = ", ".join(sorted(referenced)) or "no series"
        raise DENError(path, f"the SEG references {named}, not the image series given ({grid.series_uid}): "
                             "pair each SEG with the series it was drawn on")


def _placement(header: Any, planes: list[tuple[Any, int]], rows: int, columns: int, grid: SeriesGrid | None,
               path: Path) -> tuple[tuple[int, int, int], np.ndarray, list[int]]:
    """The label map's shape and affine, and the plane index of each frame."""
    shared = header.get("SharedFunctionalGroupsSequence", [None])[0]
    positions, orientation, spacing = [], None, None
    for number, (groups, _) in enumerate(planes, start=1):
        frame_orientation = _group(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient", path)
        frame_spacing = numbers(_group(groups, shared, "PixelMeasuresSequence", "PixelSpacing", path), 2,
                                "Pixel Spacing", path)
        axes = plane_axes(frame_orientation, path)
        if orientation is None:
            orientation, spacing = axes, frame_spacing
        elif np.max(np.abs(np.concatenate(axes[:2]) - np.concatenate(orientation[:2]))) > 1e-4:
            raise DENError(path, f"frame {number} is oriented differently from frame 1: not one stack of planes")
        positions.append(numbers(_group(groups, shared, "PlanePositionSequence", "ImagePositionPatient", path), 3,
                                 "Image Position (Patient)", path))
    if orientation is None or spacing is None:
        raise DENError(path, "the SEG has no frames")
    row, column, normal = orientation
    if grid is not None:
        return grid.shape, stack_affine(grid.row, grid.column, grid.normal, grid.spacing, grid.first,
                                        grid.slice_spacing), _on_series_grid(positions, row, column, spacing, rows,
                                                                            columns, grid, path)
    offsets = np.asarray([position @ normal for position in positions])
    unique = np.unique(np.round(offsets, 4))
    slice_spacing, indices = even_positions(unique, path, allow_gaps=True)
    plane_of = [int(indices[np.argmin(np.abs(unique - offset))]) for offset in offsets]
    lowest = positions[int(np.argmin(offsets))]
    for number, position in enumerate(positions, start=1):
        if max(abs(float((position - lowest) @ row)), abs(float((position - lowest) @ column))) > 1e-3:
            raise DENError(path, f"frame {number} is shifted within its plane: not one stack of planes")
    shape = (columns, rows, int(indices[-1]) + 1)
    check_dimensions(shape, path)
    return shape, stack_affine(row, column, normal, spacing, lowest, slice_spacing), plane_of


def _on_series_grid(positions: list[np.ndarray], row: np.ndarray, column: np.ndarray, spacing: np.ndarray,
                    rows: int, columns: int, grid: SeriesGrid, path: Path) -> list[int]:
    """Each frame's plane of the series; refuses frames whose geometry is not the series'."""
    same_plane = np.max(np.abs(np.concatenate([row, column]) - np.concatenate([grid.row, grid.column]))) <= 1e-4
    if not same_plane or np.max(np.abs(spacing - grid.spacing)) > 1e-6 or (columns, rows) != grid.shape[:2]:
        raise DENError(path, "its frames are not on the image series' pixel grid (orientation, pixel spacing or "
                             "size differ)")
    plane_of = []
    for number, position in enumerate(positions, start=1):
        offset = position - grid.first
        plane = float(offset @ grid.normal) / grid.slice_spacing
        in_plane = max(abs(float(offset @ grid.row)), abs(float(offset @ grid.column)))
        index = round(plane)
        if in_plane > 1e-3 or abs(plane - index) * grid.slice_spacing > 1e-3 or not 0 <= index < grid.shape[2]:
            raise DENError(path, f"frame {number} lies off the image series' planes")
        plane_of.append(index)
    return plane_of


def _group(groups: Any, shared: Any, sequence: str, attribute: str, path: Path) -> Any:
    """An attribute of a frame's functional group, or of the shared one."""
    for source in (groups, shared):
        if source is not None and sequence in source and len(source[sequence].value):
            item = source[sequence].value[0]
            if attribute in item:
                return item.get(attribute)
    raise DENError(path, f"no {attribute} for a frame (in {sequence})")
