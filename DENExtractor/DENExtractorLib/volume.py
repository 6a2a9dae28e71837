"""The volumes DEN works on, label maps (segmentations) and intensity images, and their checks.

Every volume is held as a :class:`Volume` whose array axes are (i, j, k) exactly as nibabel stores a NIfTI file,
with a voxel-to-RAS affine. Reading files is the job of :mod:`.readers`; this module only validates arrays, so the
Slicer layer and the readers share one set of rules. Every fault is raised as a :class:`DENError` naming the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DENError

MAX_VOXELS = 2**28
"""Largest volume accepted (268 M voxels): larger headers are refused before reading."""

MAX_AXIS_LENGTH = 16384
"""Longest axis accepted, in voxels."""

MAX_DISTINCT_LABELS = 1000
"""Most distinct values a label map may hold. Real label maps have at most a few hundred (FreeSurfer's aparc+aseg
about 180); an MRI passed as the segmentation has thousands."""

MAX_LABEL_VALUE = 2**31 - 1
"""Largest label value accepted (a 32-bit signed integer, as Slicer and ITK store labels)."""

INTENSITY_MIN_VALUES = 32
"""Label maps with at most this many values are never taken for an image (tumour segmentations have a handful)."""

SMALL_STEP_FRACTION = 0.5
"""Above this fraction of small steps between differing neighbours, an array is an image, not a label map: real
MRIs measure 0.69-0.86 (BraTS FLAIR and T1c quantised to 41-877 levels, the CaPTk FLAIR), parcellations of the
same brain into 60-246 regions 0.06-0.23."""

SLAB_VOXELS = 1 << 23
"""Voxels per slab when checking a label map (bounds the checks' temporaries to about 100 MB)."""

PASS_AS_IMAGE = "pass an MRI as --image (the intensities inside the segmentation), not as the segmentation"

MAX_AFFINE_MM = 1e6
"""Largest spacing or origin (in mm) a voxel-to-world affine may hold: a kilometre is no patient's scan, and larger
values overflow the geometry computed from them."""

GRID_TOLERANCE_MM = 1e-3
"""Largest difference between two affines (in mm) for two volumes to count as sharing a grid."""


@dataclass(frozen=True)
class Volume:
    """A 3-D volume on a voxel grid.

    ``data`` has axes (i, j, k) as nibabel stores a NIfTI file; ``affine`` maps voxel indices to RAS millimetres;
    ``source`` names the file or node in messages and provenance; ``sha256`` is the digest of the bytes that were
    read (header and data), or None for arrays that never were a file; ``segments`` names the label values of a
    file that names them (a DICOM SEG's segments: ``{"number", "label"}``), for the provenance; ``grid`` the
    ``{"source", "sha256"}`` of the image a DICOM SEG was placed on for its geometry only.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    sha256: str | None = None
    segments: tuple[dict, ...] | None = None
    grid: dict | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The voxel grid's shape (i, j, k)."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]




def segmentation_from_array(
    data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None
) -> Volume:
    """Validate an (i, j, k) label-map array and wrap it as a :class:`Volume`.

    The one rule of what a label map is (:func:`check_label_map`), the same for every reader, mode, the Slicer
    module and ``den-train``.
    """
    data = _as_3d(np.asanyarray(data), source)
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    check_label_map(data, source)
    return Volume(data=data, affine=_checked_affine(affine, source), source=source, sha256=sha256)


def check_label_map(data: np.ndarray, source: str) -> None:
    """Refuse an array that is not a label map, with a sentence saying to pass an MRI as ``--image``.

    A label map has finite, whole, non-negative values, some foreground (non-zero), at most
    :data:`MAX_DISTINCT_LABELS` distinct values, and is not intensity-like: with more than
    :data:`INTENSITY_MIN_VALUES` values, where neighbouring voxels differ, they differ by a jump between unrelated
    labels, not by the small steps of an image's smooth intensities (:data:`SMALL_STEP_FRACTION`). Works slab by
    slab, so it never holds more than a slab's temporaries beside the array.
    """
    values, background = _foreground_values(data, source)
    if not values.size:
        raise DENError(source, "the segmentation has no foreground (every voxel is 0): nothing to extract")
    distinct = values.size + (1 if background else 0)
    if distinct > MAX_DISTINCT_LABELS:
        raise DENError(source, f"not a label map: {distinct} distinct values (a label map has at most "
                               f"{MAX_DISTINCT_LABELS}); {PASS_AS_IMAGE}")
    if values.size > INTENSITY_MIN_VALUES:
        small = _small_step_fraction(data, float(values[-1] - values[0]))
        if small > SMALL_STEP_FRACTION:
            raise DENError(source, f"not a label map: {values.size} values that change in small steps between "
                                   f"neighbouring voxels ({small:.0%} of the changes), as an MRI's intensities do; "
                                   f"{PASS_AS_IMAGE}")


def _slabs(data: np.ndarray) -> Iterator[np.ndarray]:
    """The array in slabs along its last axis, each at most :data:`SLAB_VOXELS` voxels (views, no copies)."""
    per_slice = max(int(np.prod(data.shape[:-1], dtype=np.int64)), 1)
    step = max(SLAB_VOXELS // per_slice, 1)
    for start in range(0, data.shape[-1], step):
        yield data[..., start : start + step]


def _foreground_values(data: np.ndarray, source: str) -> tuple[np.ndarray, bool]:
    """The sorted distinct non-zero values, checked finite, whole and non-negative (stops early past the cap), and
    whether any voxel is 0."""
    values = np.zeros(0, dtype=data.dtype)
    background = False
    for slab in _slabs(data):
        flat = slab.ravel(order="K")  # memory order: a view of a slab of a C- or Fortran-ordered array
        foreground = flat[flat != 0]
        background = background or foreground.size < slab.size
        found = np.unique(foreground)  # sorted; NaN (never equal to 0) sorts last
        if np.issubdtype(data.dtype, np.floating):
            if not np.all(np.isfinite(found)):
                _check_finite(data, source)  # raises, counting every NaN or infinite voxel
            fractional = found[found != np.round(found)]
            if fractional.size:
                raise DENError(source, f"non-integer label values (e.g. {fractional.flat[0]:g}): this is not a label "
                                       f"map; {PASS_AS_IMAGE}")
        if found.size and found[0] < 0:
            raise DENError(source, f"negative label value {found[0]:g}: labels must be 0 (background) or positive; "
                                   f"if this is an MRI or CT, {PASS_AS_IMAGE}")
        if found.size and found[-1] > MAX_LABEL_VALUE:
            raise DENError(source, f"label value {found[-1]:g} is above {MAX_LABEL_VALUE}: not a label map "
                                   "(check the header's scl_slope)")
        values = np.union1d(values, found)
        if values.size > MAX_DISTINCT_LABELS:
            break
    return values, background


def _small_step_fraction(data: np.ndarray, value_range: float) -> float:
    """Of the neighbouring foreground voxels (along the first axis) whose values differ, the fraction that differ
    by at most ``max(1, value_range / 20)``: most of them in an image, few in a label map."""
    small_step = max(1.0, value_range / 20)
    changes = small = 0
    for slab in _slabs(data):
        after, before = slab[1:], slab[:-1]
        differ = (after != before) & (after != 0) & (before != 0)
        steps = np.abs(after[differ].astype(np.float64) - before[differ])
        changes += steps.size
        small += int(np.count_nonzero(steps <= small_step))
    return small / changes if changes else 0.0


def image_from_array(data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None) -> Volume:
    """Validate an (i, j, k) intensity array (real, finite, 3-D) and wrap it as a :class:`Volume`."""
    data = _as_3d(np.asanyarray(data), source)
    _check_finite(data, source)
    return Volume(data=data, affine=_checked_affine(affine, source), source=source, sha256=sha256)


SHOWN_VALUES = 8
"""How many values of a long list a message shows (the first ones and the last)."""


def value_list(values: list[int]) -> str:
    """Label values as a message shows them: ``[1, 2, 4]``, or for a long list ``[1, 2, ..., 5000] (5000 values)``."""
    if len(values) <= SHOWN_VALUES:
        return str(list(values))
    head = ", ".join(str(value) for value in values[: SHOWN_VALUES - 1])
    return f"[{head}, ..., {values[-1]}] ({len(values)} values)"


def select_labels(segmentation: Volume, labels: Iterable[int]) -> Volume:
    """Keep only the given label values (the others become background), as choosing segments in Slicer does.

    Raises :class:`DENError` if a requested label does not occur in the segmentation.
    """
    wanted = sorted({int(label) for label in labels})
    present = set(np.unique(segmentation.data).tolist())
    absent = [label for label in wanted if label not in present or label == 0]
    if absent or not wanted:
        raise DENError(
            segmentation.source,
            f"label(s) {value_list(absent or wanted)} not in the segmentation; it has "
            f"{value_list(sorted(int(v) for v in present - {0}))}",
        )
    kept = np.where(np.isin(segmentation.data, wanted), segmentation.data, 0)
    return Volume(data=kept, affine=segmentation.affine, source=segmentation.source, sha256=segmentation.sha256,
                  segments=segmentation.segments)


def check_same_grid(segmentation: Volume, image: Volume) -> None:
    """Raise :class:`DENError` unless the image shares the segmentation's shape and affine (within tolerance)."""
    if image.shape != segmentation.shape:
        raise DENError(
            image.source,
            f"image shape {image.shape} differs from the segmentation's {segmentation.shape} "
            f"({segmentation.source}): resample one onto the other's grid first",
        )
    difference = float(np.max(np.abs(image.affine - segmentation.affine)))
    if difference > GRID_TOLERANCE_MM:
        raise DENError(
            image.source,
            f"image affine differs from the segmentation's by {difference:.3g} mm ({segmentation.source}): "
            "the two are not on the same grid",
        )


def distinct_label_values(values: Sequence[int]) -> list[int]:
    """Give every segment its own label value, in segment order.

    A segment keeps its value unless it is not positive or an earlier segment already has it (segments drawn in
    separate layers all have value 1); then it gets the next value above the largest in use. The ``.seg.nrrd``
    reader and the Slicer module use this one rule, so a segmentation gives the same label map in both.
    """
    next_free = max(max(values, default=0), 0) + 1
    distinct: list[int] = []
    for stored in values:
        value = stored
        if value <= 0 or value in distinct:
            value, next_free = next_free, next_free + 1
        distinct.append(int(value))
    return distinct


def check_dimensions(shape: tuple[int, ...], source: str | Path) -> None:
    """Refuse shapes that are not 3-D (trailing length-1 axes aside) or too large to hold in memory."""
    spatial = list(shape)
    while len(spatial) > 3 and spatial[-1] == 1:
        spatial.pop()
    if len(spatial) != 3:
        raise DENError(source, f"expected a 3-D volume, got {len(spatial)}-D data of shape {tuple(shape)}")
    if min(spatial) < 1:
        raise DENError(source, f"empty volume of shape {tuple(shape)}")
    voxels = int(np.prod(spatial, dtype=np.int64))
    if max(spatial) > MAX_AXIS_LENGTH or voxels > MAX_VOXELS:
        raise DENError(
            source,
            f"dimensions {'x'.join(map(str, spatial))} ({voxels:.3g} voxels) exceed the limit of "
            f"{MAX_VOXELS:.3g} voxels and {MAX_AXIS_LENGTH} per axis",
        )


def _as_3d(data: np.ndarray, source: str) -> np.ndarray:
    """Drop trailing length-1 axes beyond the third; refuse anything that is then not 3-D or not real numbers."""
    check_dimensions(tuple(data.shape), source)
    while data.ndim > 3:
        data = data[..., 0]
    if data.dtype.kind == "c":
        raise DENError(source, f"voxel type {data.dtype} is complex: DEN needs real-valued voxels")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype.kind == "b"):
        raise DENError(source, f"voxel type {data.dtype} is not numeric")
    return data


def _check_finite(data: np.ndarray, source: str) -> None:
    """Refuse NaN or infinite voxels."""
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        count = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise DENError(source, f"{count} voxels are NaN or infinite")


def _checked_affine(affine: np.ndarray, source: str) -> np.ndarray:
    """Return the affine as a finite 4x4 float64 array, or raise."""
    try:
        affine = np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise DENError(source, "the voxel-to-world affine is not a 4x4 matrix of numbers") from None
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise DENError(source, "the voxel-to-world affine is not a finite 4x4 matrix")
    largest = float(np.max(np.abs(affine)))
    if largest > MAX_AFFINE_MM:
        raise DENError(source, f"the voxel-to-world affine holds {largest:.3g} mm, more than {MAX_AFFINE_MM:g} mm "
                               "(no scanner's voxel spacing or origin): a damaged header")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DENError(source, "the voxel-to-world affine is singular (zero voxel spacing)")
    return affine
