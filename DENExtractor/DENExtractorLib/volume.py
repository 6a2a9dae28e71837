"""The volumes DEN works on, label maps (segmentations) and intensity images, and their checks.

Every volume is held as a :class:`Volume` whose array axes are (i, j, k) exactly as nibabel stores a NIfTI file,
with a voxel-to-RAS affine. Reading files is the job of :mod:`.readers`; this module only validates arrays, so the
Slicer layer and the readers share one set of rules. Every fault is raised as a :class:`DENError` naming the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

GRID_TOLERANCE_MM = 1e-3
"""Largest difference between two affines (in mm) for two volumes to count as sharing a grid."""


@dataclass(frozen=True)
class Volume:
    """A 3-D volume on a voxel grid.

    ``data`` has axes (i, j, k) as nibabel stores a NIfTI file; ``affine`` maps voxel indices to RAS millimetres;
    ``source`` names the file or node in messages and provenance; ``sha256`` is the digest of the bytes that were
    read (header and data), or None for arrays that never were a file; ``segments`` names the label values of a
    file that names them (a DICOM SEG's segments: ``{"number", "label"}``), for the provenance.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    sha256: str | None = None
    segments: tuple[dict, ...] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The voxel grid's shape (i, j, k)."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]




def segmentation_from_array(
    data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None
) -> Volume:
    """Validate an (i, j, k) label-map array and wrap it as a :class:`Volume`.

    Labels must be finite, whole and non-negative, at most :data:`MAX_DISTINCT_LABELS` distinct values, and at
    least one voxel must be foreground (non-zero).
    """
    data = _as_3d(np.asanyarray(data), source)
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    foreground = data[data != 0]  # label maps are mostly background: every check below runs on the few others
    values = np.unique(foreground)  # sorted; NaN (never equal to 0) sorts last
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            _check_finite(data, source)  # raises, counting every NaN or infinite voxel
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise DENError(
                source,
                f"non-integer label values (e.g. {fractional.flat[0]:g}): this is not a label map; "
                "pass an MRI as --image, not as the segmentation",
            )
    if values.size and values[0] < 0:
        raise DENError(source, f"negative label value {values[0]:g}: labels must be 0 (background) or positive")
    if not values.size:
        raise DENError(source, "the segmentation has no foreground (every voxel is 0): nothing to extract")
    distinct = values.size + (1 if foreground.size < data.size else 0)
    if distinct > MAX_DISTINCT_LABELS:
        raise DENError(
            source,
            f"not a label map: {distinct} distinct values (a label map has at most {MAX_DISTINCT_LABELS}); "
            "pass an MRI as --image, not as the segmentation",
        )
    return Volume(data=data, affine=_checked_affine(affine, source), source=source, sha256=sha256)


def image_from_array(data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None) -> Volume:
    """Validate an (i, j, k) intensity array (real, finite, 3-D) and wrap it as a :class:`Volume`."""
    data = _as_3d(np.asanyarray(data), source)
    _check_finite(data, source)
    return Volume(data=data, affine=_checked_affine(affine, source), source=source, sha256=sha256)


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
            f"label(s) {absent or wanted} not in the segmentation; it has {sorted(int(v) for v in present - {0})}",
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
    for value in values:
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
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DENError(source, "the voxel-to-world affine is singular (zero voxel spacing)")
    return affine
