"""Reading and validating the volumes DEN works on: label maps (segmentations) and intensity images.

Every volume is held as a :class:`Volume` whose array axes are (i, j, k) exactly as nibabel stores a NIfTI file,
with a voxel-to-RAS affine. Every fault is raised as a :class:`DENError` naming the file and the fault.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DENError, describe_error

MAX_VOXELS = 2**28
"""Largest volume accepted (268 M voxels, about 2 GiB as float64): larger headers are refused before reading."""

MAX_AXIS_LENGTH = 16384
"""Longest axis accepted, in voxels."""

GRID_TOLERANCE_MM = 1e-3
"""Largest difference between two affines (in mm) for two volumes to count as sharing a grid."""

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SEGMENTATION_NRRD_SUFFIX = ".seg.nrrd"
NRRD_SUFFIXES = (".nrrd", ".nhdr")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A 3-D volume on a voxel grid.

    ``data`` has axes (i, j, k) as nibabel stores a NIfTI file; ``affine`` maps voxel indices to RAS millimetres;
    ``source`` names the file or node in messages and provenance; ``sha256`` is the digest of the file's bytes, or
    None for arrays that never were a file.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    sha256: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The voxel grid's shape (i, j, k)."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def strip_volume_suffix(path: str | Path) -> str:
    """Return a file name without its volume suffix: ``pat1.seg.nrrd`` -> ``pat1``, ``x.nii.gz`` -> ``x``."""
    name = Path(path).name
    for suffix in (SEGMENTATION_NRRD_SUFFIX, ".nii.gz", ".nii", ".nrrd", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def load_segmentation(path: str | Path) -> Volume:
    """Read and validate a label map from ``.nii``, ``.nii.gz``, ``.seg.nrrd`` or ``.nrrd``.

    Label values are kept as stored. Raises :class:`DENError` for a missing or unreadable file, data that is not
    3-D, NaN or infinite values, non-integer or negative labels, absurd dimensions, or no foreground at all.
    """
    path = Path(path)
    data, affine = _read_any(path, segmentation=True)
    return segmentation_from_array(data, affine, str(path), sha256=file_sha256(path))


def load_image(path: str | Path) -> Volume:
    """Read and validate an intensity image (``.nii``, ``.nii.gz`` or ``.nrrd``) for image mode."""
    path = Path(path)
    data, affine = _read_any(path, segmentation=False)
    return image_from_array(data, affine, str(path), sha256=file_sha256(path))


def segmentation_from_array(
    data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None
) -> Volume:
    """Validate an (i, j, k) label-map array and wrap it as a :class:`Volume`.

    Labels must be finite, whole and non-negative, and at least one voxel must be foreground (non-zero).
    """
    data = _as_3d(np.asanyarray(data), source)
    _check_finite(data, source)
    if np.issubdtype(data.dtype, np.floating):
        fractional = data[data != np.round(data)]
        if fractional.size:
            raise DENError(
                source,
                f"non-integer label values (e.g. {fractional.flat[0]:g}): this is not a label map; "
                "pass an MRI as --image, not as the segmentation",
            )
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    if data.size and data.min() < 0:
        raise DENError(source, f"negative label value {data.min():g}: labels must be 0 (background) or positive")
    if not np.any(data):
        raise DENError(source, "the segmentation has no foreground (every voxel is 0): nothing to extract")
    return Volume(data=data, affine=_checked_affine(affine, source), source=source, sha256=sha256)


def image_from_array(data: np.ndarray, affine: np.ndarray, source: str, sha256: str | None = None) -> Volume:
    """Validate an (i, j, k) intensity array (finite, 3-D) and wrap it as a :class:`Volume`."""
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
    return Volume(data=kept, affine=segmentation.affine, source=segmentation.source, sha256=segmentation.sha256)


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


def _read_any(path: Path, segmentation: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read a volume file by its suffix, returning (data in i, j, k order, voxel-to-RAS affine)."""
    if not path.exists():
        raise DENError(path, "no such file")
    if not path.is_file():
        raise DENError(path, "not a file")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return _read_nifti(path)
    if name.endswith(SEGMENTATION_NRRD_SUFFIX):
        if not segmentation:
            raise DENError(path, "a .seg.nrrd is a segmentation, not an intensity image")
        from .segmentation_nrrd import read_segmentation_nrrd

        return read_segmentation_nrrd(path)
    if name.endswith(NRRD_SUFFIXES):
        return _read_nrrd(path)
    raise DENError(path, "not a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .seg.nrrd) file")


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file with nibabel: header checks first, then the voxel data."""
    import nibabel

    try:
        image = nibabel.load(str(path))
    except (nibabel.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, ValueError) as error:
        raise DENError(path, f"not a readable NIfTI file ({describe_error(error).replace(str(path), 'the file')})") from None
    shape = tuple(int(n) for n in image.shape)
    check_dimensions(shape, path)
    try:
        data = np.asanyarray(image.dataobj)
    except (EOFError, OSError, zlib.error, ValueError, gzip.BadGzipFile) as error:
        raise DENError(path, f"the voxel data cannot be read: truncated or corrupt file ({describe_error(error)})") from None
    return data, np.asarray(image.affine, dtype=np.float64)


def _read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a plain NRRD volume with pynrrd in (i, j, k) order and convert its space to RAS."""
    import nrrd

    try:
        header = nrrd.read_header(str(path))
        check_dimensions(tuple(int(n) for n in header["sizes"]), path)
        data, header = nrrd.read(str(path), index_order="F")
    except DENError:
        raise
    except Exception as error:  # pynrrd raises many kinds on corrupt files
        raise DENError(path, f"not a readable NRRD file ({describe_error(error)})") from None
    return data, nrrd_affine(header, path)


def nrrd_affine(header: dict, source: str | Path) -> np.ndarray:
    """Return the voxel-to-RAS affine described by a NRRD header's space, space directions and space origin."""
    space = str(header.get("space", "")).lower()
    if space in ("left-posterior-superior", "lps"):
        to_ras = LPS_TO_RAS
    elif space in ("right-anterior-superior", "ras"):
        to_ras = np.eye(4)
    else:
        raise DENError(source, f"unsupported NRRD space {header.get('space')!r}: expected LPS or RAS")
    directions = np.asarray(header.get("space directions"), dtype=np.float64)
    directions = directions[~np.isnan(directions).any(axis=1)]
    affine = np.eye(4)
    affine[:3, :3] = directions.T
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    return to_ras @ affine


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
    """Drop trailing length-1 axes beyond the third; refuse anything that is then not 3-D."""
    check_dimensions(tuple(data.shape), source)
    while data.ndim > 3:
        data = data[..., 0]
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
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise DENError(source, "the voxel-to-world affine is not a finite 4x4 matrix")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DENError(source, "the voxel-to-world affine is singular (zero voxel spacing)")
    return affine
