"""Reading volume files: one reader per format (NIfTI, NRRD, Slicer ``.seg.nrrd``, DICOM), chosen by the file's
suffix; a folder is a DICOM image series, a DICOM file (``.dcm`` or a DICOM preamble) a DICOM SEG.

Every reader returns (data in nibabel's i, j, k order, voxel-to-RAS affine, sha256 of every byte it read) and
bounds its memory by what the header declares before reading any voxel. Validation of the arrays is
:mod:`..volume`'s job.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DENError
from ..hashing import file_sha256
from ..volume import Volume, image_from_array, segmentation_from_array
from .dicom_files import folder_sha256
from .dicom_seg import read_dicom_seg
from .dicom_series import read_dicom_series
from .images import is_image_object, read_image_object
from .limits import max_input_bytes
from .nifti import read_nifti
from .nrrd import read_nrrd
from .nrrd_payload import nrrd_sha256
from .seg_nrrd import read_segmentation_nrrd

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SEGMENTATION_NRRD_SUFFIX = ".seg.nrrd"
NRRD_SUFFIXES = (".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom")
VOLUME_SUFFIXES = (SEGMENTATION_NRRD_SUFFIX, ".nii.gz", ".nii", ".nrrd", ".nhdr", *DICOM_SUFFIXES)
DICOM_PREAMBLE_BYTES = 132

logger = logging.getLogger(__name__)

__all__ = [
    "VOLUME_SUFFIXES",
    "check_readable",
    "load_case",
    "load_image",
    "load_segmentation",
    "max_input_bytes",
    "source_sha256",
    "strip_volume_suffix",
]


def load_segmentation(path: str | Path | Any) -> Volume:
    """Read and validate a label map from ``.nii``, ``.nii.gz``, ``.seg.nrrd``, ``.nrrd`` or ``.nhdr``, or take
    it from a nibabel or SimpleITK image in memory (same checks).

    Label values are kept as stored. Raises :class:`DENError` for a missing or unreadable file, data that is not
    3-D, NaN or infinite values, non-integer or negative labels, absurd dimensions, or no foreground at all.
    """
    return load_case(path)[0]


def load_case(segmentation: str | Path | Any, image: str | Path | Any | None = None) -> tuple[Volume, Volume | None]:
    """Read and validate a case: its segmentation and, for image mode, its image (see :func:`load_segmentation`,
    :func:`load_image`), the segmentation first. A DICOM SEG paired with a DICOM image series folder is placed on
    that series' grid (and must reference it); alone, it takes the grid of its own frames."""
    if is_image_object(segmentation):
        data, affine, name = read_image_object(segmentation)
        return segmentation_from_array(data, affine, name), load_image(image) if image is not None else None
    path = Path(segmentation)
    check_readable(path)
    if path.is_dir():
        raise DENError(path, "a folder is a DICOM image series: give it as --image, and its DICOM SEG file as the "
                             "segmentation")
    if not _is_dicom_file(path):
        data, affine, sha256 = _read_any(path, segmentation=True)
        volume = segmentation_from_array(data, affine, os.path.abspath(path), sha256=sha256)
        return volume, load_image(image) if image is not None else None
    image_volume, grid = None, None
    if image is not None and not is_image_object(image) and Path(image).is_dir():
        data, affine, sha256, grid = read_dicom_series(Path(image))
        image_volume = image_from_array(data, affine, os.path.abspath(image), sha256=sha256)
    labels, affine, sha256, segments = read_dicom_seg(path, grid)
    volume = replace(segmentation_from_array(labels, affine, os.path.abspath(path), sha256=sha256),
                     segments=tuple(segments))
    if image is not None and image_volume is None:
        image_volume = load_image(image)
    return volume, image_volume


def load_image(path: str | Path | Any) -> Volume:
    """Read and validate an intensity image (``.nii``, ``.nii.gz``, ``.nrrd`` or ``.nhdr``, or a nibabel or
    SimpleITK image in memory) for image mode."""
    if is_image_object(path):
        data, affine, name = read_image_object(path)
        return image_from_array(data, affine, name)
    path = Path(path)
    check_readable(path)
    if path.is_dir():
        data, affine, sha256, _ = read_dicom_series(path)
        return image_from_array(data, affine, os.path.abspath(path), sha256=sha256)
    if _is_dicom_file(path):
        raise DENError(path, "a single DICOM file: give the folder of the image series as the image")
    data, affine, sha256 = _read_any(path, segmentation=False)
    return image_from_array(data, affine, os.path.abspath(path), sha256=sha256)


def check_readable(path: str | Path) -> None:
    """Raise :class:`DENError` unless ``path`` is an existing file with a volume suffix or DICOM preamble, or a
    folder (a DICOM series) (a cheap check, no reading)."""
    path = Path(path)
    if not path.exists():
        raise DENError(path, "no such file")
    if path.is_dir():
        return
    if not path.is_file():
        raise DENError(path, "not a file")
    if not (path.name.lower().endswith(VOLUME_SUFFIXES) or _is_dicom_file(path)):
        raise DENError(path, "not a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr, .seg.nrrd) or DICOM (.dcm, or a "
                             "series folder) file")


def source_sha256(path: str | Path) -> str:
    """The sha256 a reader records for ``path``: the file's bytes, plus a NRRD's detached data file's bytes."""
    path = Path(path)
    check_readable(path)
    if path.is_dir():
        return folder_sha256(path)
    if path.name.lower().endswith(NRRD_SUFFIXES):
        return nrrd_sha256(path)
    return file_sha256(path)


def strip_volume_suffix(path: str | Path) -> str:
    """Return a file name without its volume suffix: ``pat1.seg.nrrd`` -> ``pat1``, ``x.nii.gz`` -> ``x``."""
    name = Path(path).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _is_dicom_file(path: Path) -> bool:
    """A file named ``.dcm``/``.dicom`` or starting with the DICOM preamble (``DICM`` at byte 128)."""
    if not path.is_file():
        return False
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return True
    with open(path, "rb") as handle:
        start = handle.read(DICOM_PREAMBLE_BYTES)
    return len(start) == DICOM_PREAMBLE_BYTES and start[128:] == b"DICM"


def _read_any(path: Path, segmentation: bool) -> tuple:
    """Read a volume file by its suffix."""
    check_readable(path)
    logger.debug("reading %s %s", "segmentation" if segmentation else "image", path)
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return read_nifti(path)
    if name.endswith(SEGMENTATION_NRRD_SUFFIX):
        if not segmentation:
            raise DENError(path, "a .seg.nrrd is a segmentation, not an intensity image")
        return read_segmentation_nrrd(path)
    return read_nrrd(path)
