"""Reading volume files: one reader per format (NIfTI, NRRD, Slicer ``.seg.nrrd``), chosen by the file's suffix.

Every reader returns (data in nibabel's i, j, k order, voxel-to-RAS affine, sha256 of every byte it read) and
bounds its memory by what the header declares before reading any voxel. Validation of the arrays is
:mod:`..volume`'s job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import DENError
from ..hashing import file_sha256
from ..volume import Volume, image_from_array, segmentation_from_array
from .images import is_image_object, read_image_object
from .limits import max_input_bytes
from .nifti import read_nifti
from .nrrd import read_nrrd
from .nrrd_payload import nrrd_sha256
from .seg_nrrd import read_segmentation_nrrd

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SEGMENTATION_NRRD_SUFFIX = ".seg.nrrd"
NRRD_SUFFIXES = (".nrrd", ".nhdr")
VOLUME_SUFFIXES = (SEGMENTATION_NRRD_SUFFIX, ".nii.gz", ".nii", ".nrrd", ".nhdr")

logger = logging.getLogger(__name__)

__all__ = [
    "VOLUME_SUFFIXES",
    "check_readable",
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
    if is_image_object(path):
        data, affine, name = read_image_object(path)
        return segmentation_from_array(data, affine, name)
    path = Path(path)
    data, affine, sha256 = _read_any(path, segmentation=True)
    return segmentation_from_array(data, affine, os.path.abspath(path), sha256=sha256)


def load_image(path: str | Path | Any) -> Volume:
    """Read and validate an intensity image (``.nii``, ``.nii.gz``, ``.nrrd`` or ``.nhdr``, or a nibabel or
    SimpleITK image in memory) for image mode."""
    if is_image_object(path):
        data, affine, name = read_image_object(path)
        return image_from_array(data, affine, name)
    path = Path(path)
    data, affine, sha256 = _read_any(path, segmentation=False)
    return image_from_array(data, affine, os.path.abspath(path), sha256=sha256)


def check_readable(path: str | Path) -> None:
    """Raise :class:`DENError` unless ``path`` is an existing file with a volume suffix (a cheap check, no reading)."""
    path = Path(path)
    if not path.exists():
        raise DENError(path, "no such file")
    if not path.is_file():
        raise DENError(path, "not a file")
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise DENError(path, "not a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr, .seg.nrrd) file")


def source_sha256(path: str | Path) -> str:
    """The sha256 a reader records for ``path``: the file's bytes, plus a NRRD's detached data file's bytes."""
    path = Path(path)
    check_readable(path)
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
