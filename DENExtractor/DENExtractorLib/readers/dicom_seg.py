"""Reading a DICOM SEG (a segmentation object, as 3D Slicer, dcmqi, OHIF and highdicom write them) as one label map
whose values are the segment numbers; decoded by highdicom (``Segmentation.get_volume``).

Both SOP classes are read: Segmentation Storage (BINARY frames, one segment each, the segment named per frame or,
for a single segment, in the shared functional groups) and Label Map Segmentation Storage (LABELMAP frames whose
8- or 16-bit values are the segment numbers). FRACTIONAL SEGs and overlapping segments are refused.

Headers first: the SOP class, the segmentation type, the declared frames against the memory bound and against the
file's size (a truncated or padded file is refused before decoding), every frame described, and the volume the
frames span. The plane spacing is the one the SEG declares (Spacing Between Slices), so a SEG drawn on every other
plane keeps its grid. Placement:

- On a target grid (an image series or a NIfTI/NRRD image of the same patient, given for intensities or for its
  geometry only): the SEG's volume is padded (empty frames omitted by its writer) and its axes permuted or flipped
  onto the target's voxels, never resampled; the SEG must reference the series when the target is one, and must lie
  on the target's voxels within :data:`GRID_TOLERANCE` voxel.
- Alone: the SEG's own grid, which spans only the planes that hold frames. A SEG that omits empty frames spans
  fewer planes than the images it references, which would change its features: refused, naming how to give the
  series.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from ..volume import check_dimensions
from .dicom_files import (
    LPS_TO_RAS,
    MAX_FRAMES,
    SEG_SOP_CLASSES,
    DicomFile,
    check_declared_pixels,
    ijk_affine,
    ijk_array,
    in_normal_order,
    quietly,
    read_dataset,
)
from .limits import exceeds_limit

SEGMENT_TYPES = ("BINARY", "LABELMAP")
GRID_TOLERANCE = 1e-3
"""How far (in voxels, and in direction cosines) a SEG's voxels may lie from a target grid's and still be placed
on it."""
GRID_HINT = ("give the image series it was drawn on (--grid FOLDER in label mode, or --image FOLDER in image mode; "
             "a 'grid' or 'image' column in a cases CSV)")


@dataclass(frozen=True)
class TargetGrid:
    """A grid to place a DICOM SEG on: shape (i, j, k), voxel-to-RAS affine, where it comes from, and the Series
    Instance UID the SEG must reference (None for a NIfTI or NRRD image)."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    source: str
    series_uid: str | None = None


def read_dicom_seg(dicom: DicomFile, grid: TargetGrid | None = None) -> tuple[np.ndarray, np.ndarray, str, list[dict]]:
    """Return (label map (i, j, k) of segment numbers, voxel-to-RAS affine, file sha256, the segments as
    ``{"number", "label"}``) of a DICOM SEG whose header is read; on ``grid`` when given."""
    path = dicom.path
    if dicom.sop_class not in SEG_SOP_CLASSES:
        raise DENError(path, f"not a DICOM SEG (SOP class {dicom.sop_class}); an image series is given as a "
                             "folder with --image")
    header = dicom.header
    kind = str(header.get("SegmentationType", ""))
    if kind not in SEGMENT_TYPES:
        raise DENError(path, f"segmentation type {kind or 'missing'}: DEN reads BINARY and LABELMAP SEGs (threshold "
                             "a FRACTIONAL one into a BINARY SEG or a label map first)")
    frames, bits = _declared_size(dicom)
    segments = _segments(header, kind, path)
    described = len(header.get("PerFrameFunctionalGroupsSequence", []))
    if described != frames:
        raise DENError(path, f"the header declares {frames} frames but describes {described}: frames are missing")
    if grid is not None and grid.series_uid is not None:
        _check_reference(header, grid.series_uid, path)
    largest = max(segment["number"] for segment in segments)
    dtype = np.dtype(np.uint16) if kind == "LABELMAP" and bits == 16 else np.min_scalar_type(largest)
    hasher = hashlib.sha256()
    seg = _highdicom_segmentation(read_dataset(dicom, hasher), path)
    spanned = _spanned_shape(seg, path)
    target = 0 if grid is None else int(np.prod(grid.shape, dtype=np.int64))
    problem = exceeds_limit((int(np.prod(spanned, dtype=np.int64)) + target) * dtype.itemsize)
    if problem:
        raise DENError(path, problem)
    if grid is None:
        _refuse_partial_span(header, spanned[0], path)
    volume = _decoded_volume(seg, dtype, path)
    values, affine = _on_grid(volume, grid, path) if grid is not None else _ijk(in_normal_order(volume))
    known = {segment["number"] for segment in segments}
    unknown = sorted(set(np.unique(values).tolist()) - {0} - known)
    if unknown:
        raise DENError(path, f"pixel value(s) {unknown[:5]} name no segment the SEG describes (segments "
                             f"{sorted(known)})")
    return values, affine, hasher.hexdigest(), segments


def _declared_size(dicom: DicomFile) -> tuple[int, int]:
    """(frames, bits allocated) the header declares, checked against the memory bound and the file's size."""
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
    if frames > MAX_FRAMES:
        raise DENError(path, f"the header declares {frames} frames, more than the {MAX_FRAMES} DEN reads in one SEG")
    check_declared_pixels(dicom, frames, rows, columns, bits)
    return frames, bits


def _segments(header: Any, kind: str, path: Path) -> list[dict]:
    """The segments the SEG describes: number (the label value DEN uses) and label. A LABELMAP's segment 0 (the
    background its writer may describe) is background to DEN too."""
    segments = []
    for item in header.get("SegmentSequence", []):
        try:
            number = int(item.SegmentNumber)
        except (AttributeError, TypeError, ValueError):
            raise DENError(path, "a segment without a valid Segment Number") from None
        if number == 0 and kind == "LABELMAP":
            continue
        if number < 1:
            raise DENError(path, f"segment number {number}: segment numbers must be positive")
        segments.append({"number": number, "label": str(item.get("SegmentLabel", ""))})
    if not segments:
        raise DENError(path, "the SEG describes no segments")
    if len({segment["number"] for segment in segments}) != len(segments):
        raise DENError(path, "two segments share one Segment Number")
    return segments


def _check_reference(header: Any, series_uid: str, path: Path) -> None:
    """The SEG must reference the image series it is paired with."""
    referenced = {str(item.get("SeriesInstanceUID", "")) for item in header.get("ReferencedSeriesSequence", [])}
    if series_uid not in referenced:
        named = ", ".join(sorted(referenced)) or "no series"
        raise DENError(path, f"the SEG references {named}, not the image series given ({series_uid}): "
                             "pair each SEG with the series it was drawn on")


def _highdicom_segmentation(dataset: Any, path: Path) -> Any:
    """The dataset as a highdicom ``Segmentation`` (its frame descriptions indexed); one line for what it refuses."""
    import highdicom

    try:
        with quietly():
            return highdicom.seg.Segmentation.from_dataset(dataset, copy=False)
    except Exception as error:  # highdicom raises ValueError, AttributeError, KeyError... on malformed SEGs
        raise DENError(path, f"a SEG highdicom cannot read ({describe_error(error)})") from None


def _spanned_shape(seg: Any, path: Path) -> tuple[int, int, int]:
    """(planes, rows, columns) of the volume the SEG's frames span at its declared plane spacing, from the frame
    descriptions alone."""
    try:
        with quietly():
            geometry = seg.get_volume_geometry()
    except Exception as error:  # inconsistent orientations or pixel spacings across frames
        raise DENError(path, f"its frames do not form one stack of planes ({describe_error(error)})") from None
    if geometry is None:
        spacing = seg.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence", [{}])[0].get(
            "SpacingBetweenSlices", None)
        declared = f" {float(spacing):g} mm apart, as declared" if spacing is not None else ""
        raise DENError(path, f"its frames do not lie on one stack of evenly spaced planes{declared} (a frame "
                             "between planes, or frames oriented differently)")
    shape = tuple(int(n) for n in geometry.spatial_shape)
    check_dimensions(shape[::-1], path)
    return shape[0], shape[1], shape[2]


def _refuse_partial_span(header: Any, planes: int, path: Path) -> None:
    """A SEG alone that spans fewer planes than the images it references (its writer omitted empty frames) is
    refused: its features would differ from those on the series' grid."""
    referenced = sum(len(item.get("ReferencedInstanceSequence", []))
                     for item in header.get("ReferencedSeriesSequence", []))
    if planes < referenced:
        raise DENError(path, f"its frames span only {planes} of the {referenced} images it references (its writer "
                             f"omitted empty frames), so its grid is not the series': {GRID_HINT}")


def _decoded_volume(seg: Any, dtype: np.dtype, path: Path) -> Any:
    """The SEG's frames decoded by highdicom into one volume of segment numbers on the planes they span."""
    try:
        with quietly():
            return seg.get_volume(combine_segments=True, dtype=dtype)
    except RuntimeError as error:
        if "overlap" in str(error):
            raise DENError(path, "some voxels belong to two segments at once; DEN needs one label per voxel: remove "
                                 "the overlap or keep one segment") from None
        raise DENError(path, f"its frames cannot be decoded ({describe_error(error)})") from None
    except Exception as error:  # undecodable or truncated frames
        raise DENError(path, f"the pixel data cannot be read: truncated, corrupt or compressed in a way that cannot "
                             f"be decoded here ({describe_error(error)})") from None


def _on_grid(volume: Any, grid: TargetGrid, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The label map placed on ``grid``'s voxels (padded, cropped, its axes permuted or flipped; never resampled)."""
    import highdicom

    lps = LPS_TO_RAS @ grid.affine[:, [2, 1, 0, 3]]  # (k, j, i) indices to LPS, as highdicom indexes a volume
    target = highdicom.VolumeGeometry(lps, grid.shape[::-1], coordinate_system="PATIENT")
    try:
        with quietly():
            placed = volume.match_geometry(target, tol=GRID_TOLERANCE)
    except RuntimeError as error:
        raise DENError(path, f"its frames do not lie on the voxels of {grid.source} (within {GRID_TOLERANCE} voxel; "
                             f"{describe_error(error)}): pair it with the image it was drawn on, or resample one onto "
                             "the other's grid") from None
    inside = int(np.count_nonzero(placed.array))
    if inside != int(np.count_nonzero(volume.array)):
        raise DENError(path, f"{int(np.count_nonzero(volume.array)) - inside} of its voxels lie outside "
                             f"{grid.source}: pair it with the image it was drawn on")
    return ijk_array(placed), grid.affine


def _ijk(volume: Any) -> tuple[np.ndarray, np.ndarray]:
    """A highdicom volume's array as (i, j, k), with its voxel-to-RAS affine."""
    return ijk_array(volume), ijk_affine(volume)
