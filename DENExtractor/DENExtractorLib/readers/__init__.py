"""Reading volume files: one reader per format (NIfTI, NRRD, Slicer ``.seg.nrrd``, DICOM), chosen by the file's
suffix; a folder is a DICOM image series, a DICOM file (``.dcm`` or a DICOM preamble) a DICOM SEG or RTSTRUCT as
the segmentation, an enhanced (multi-frame) image as the image.

Every reader returns (data in nibabel's i, j, k order, voxel-to-RAS affine, sha256 of every byte it read) and
bounds its memory by what the header declares before reading any voxel. Validation of the arrays is
:mod:`..volume`'s job.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DENError
from ..hashing import file_sha256
from ..volume import Volume, image_from_array, segmentation_from_array
from .dicom_files import RT_STRUCTURE_SET_STORAGE, DicomFile, folder_sha256, read_header
from .dicom_rtstruct import read_rtstruct
from .dicom_seg import TargetGrid, read_dicom_seg
from .dicom_series import read_dicom_series, read_series_grid, series_planes, series_sha256
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
FOLDER_ENTRIES_LOOKED_AT = 1000
"""How many entries of a folder given as a segmentation are looked at to say what it holds."""

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


def load_case(segmentation: str | Path | Any, image: str | Path | Any | None = None, *,
              grid: str | Path | Any | None = None, series: str | None = None,
              roi: str | None = None) -> tuple[Volume, Volume | None]:
    """Read and validate a case: its segmentation and, for image mode, its image (see :func:`load_segmentation`,
    :func:`load_image`). A DICOM SEG is placed on the grid of its image (a DICOM series folder, which it must
    reference, or a NIfTI/NRRD image on the same voxels), or of ``grid``, an image given for its geometry only (label
    mode); alone, it takes the grid of its own frames. A DICOM RTSTRUCT's ROI ``roi`` (needed when it holds several)
    is rasterised on the images of its series, given as ``image`` or ``grid``. ``series``: the Series Instance UID to
    read from a DICOM folder (``image`` or ``grid``) holding several series."""
    name = segmentation if is_image_object(segmentation) else Path(segmentation)
    with _file_faults(name):  # the system's refusal to read one of the case's files: one line naming it
        return _read_case(segmentation, image, grid, series, roi)


def _read_case(segmentation: str | Path | Any, image: str | Path | Any | None, grid: str | Path | Any | None,
               series: str | None, roi: str | None) -> tuple[Volume, Volume | None]:
    """:func:`load_case`'s reading and placing of a case's files."""
    name = segmentation if is_image_object(segmentation) else Path(segmentation)
    if series is not None and not any(_is_dicom_image(source) for source in (image, grid) if source is not None):
        raise DENError(name, f"a series ({series}) is chosen, but no DICOM image series is given to choose it from "
                             "(--image or --grid FOLDER)")
    dicom = None if is_image_object(segmentation) or not _is_dicom_file(Path(segmentation)) else read_header(Path(segmentation))
    if roi is not None and (dicom is None or dicom.sop_class != RT_STRUCTURE_SET_STORAGE):
        raise DENError(name, f"an ROI ({roi!r}) is chosen, but the segmentation is not a DICOM RTSTRUCT")
    if dicom is None:
        return _load_label_map(segmentation, grid), _image_and_grid(image, series)[0] if image is not None else None
    image_volume, target = _image_and_grid(image, series) if image is not None else (None, None)
    grid_record = None
    if grid is not None:
        target = _target_grid(grid, series)
        grid_record = {"source": target.source,
                       "sha256": None if is_image_object(grid) else source_sha256(grid, series)}
    if dicom.sop_class == RT_STRUCTURE_SET_STORAGE:
        labels, affine, sha256, segments = _read_rtstruct(dicom, grid if grid is not None else image, series, roi)
    else:
        labels, affine, sha256, segments = read_dicom_seg(dicom, target)
    volume = replace(segmentation_from_array(labels, affine, os.path.abspath(dicom.path), sha256=sha256),
                     segments=tuple(segments), grid=grid_record)
    return volume, image_volume


def _load_label_map(segmentation: str | Path | Any, grid: str | Path | Any | None) -> Volume:
    """A label map that is not DICOM: a file or an image in memory."""
    if grid is not None:
        raise DENError(grid, "a grid is given to place a DICOM SEG on, and the segmentation is not one")
    if is_image_object(segmentation):
        data, affine, name = read_image_object(segmentation)
        return segmentation_from_array(data, affine, name)
    path = Path(segmentation)
    check_readable(path)
    if path.is_dir():
        raise DENError(path, _folder_as_segmentation(path))
    with _file_faults(path):
        data, affine, sha256 = _read_any(path, segmentation=True)
    return segmentation_from_array(data, affine, os.path.abspath(path), sha256=sha256)


def _read_rtstruct(dicom: DicomFile, source: str | Path | Any | None, series: str | None,
                   roi: str | None) -> tuple[Any, Any, str, list[dict]]:
    """An RTSTRUCT's ROI on the images of its series (``source``: the series folder given as grid or image)."""
    if source is None or not _is_dicom_image(source):
        raise DENError(dicom.path, "an RTSTRUCT holds contours drawn on the images of a series: give that series "
                                   "(--grid FOLDER in label mode, or --image FOLDER in image mode; a 'grid' or "
                                   "'image' column in a cases CSV)")
    series_uid, _, affine, planes = series_planes(Path(source), series)
    labels, sha256, segments = read_rtstruct(dicom, series_uid, planes, roi)
    return labels, affine, sha256, segments


def _target_grid(source: str | Path | Any, series: str | None) -> TargetGrid:
    """The grid a DICOM SEG is placed on without using the image's intensities: a DICOM series' (from its headers
    alone; the SEG must reference it), or a NIfTI/NRRD image's."""
    if _is_dicom_image(source):
        check_readable(source)
        series_uid, shape, affine = read_series_grid(Path(source), series)
        return TargetGrid(shape, affine, os.path.abspath(source), series_uid)
    return _image_and_grid(source, series)[1]


def _image_and_grid(source: str | Path | Any, series: str | None = None) -> tuple[Volume, TargetGrid]:
    """An image (see :func:`load_image`) and its grid, carrying its Series Instance UID when it is a DICOM series."""
    if _is_dicom_image(source):
        path = Path(source)
        check_readable(path)
        data, affine, sha256, series_uid = read_dicom_series(path, series)
        volume = image_from_array(data, affine, os.path.abspath(path), sha256=sha256)
        return volume, TargetGrid(volume.shape, volume.affine, volume.source, series_uid)
    volume = load_image(source)
    return volume, TargetGrid(volume.shape, volume.affine, volume.source)


def _is_dicom_image(source: str | Path | Any) -> bool:
    """Whether an image source is DICOM: a series folder, or one DICOM file (an enhanced multi-frame image)."""
    return not is_image_object(source) and (Path(source).is_dir() or _is_dicom_file(Path(source)))


def load_image(path: str | Path | Any) -> Volume:
    """Read and validate an intensity image (``.nii``, ``.nii.gz``, ``.nrrd`` or ``.nhdr``, a DICOM series folder
    or enhanced multi-frame DICOM file, or a nibabel or SimpleITK image in memory) for image mode."""
    if is_image_object(path):
        data, affine, name = read_image_object(path)
        return image_from_array(data, affine, name)
    path = Path(path)
    check_readable(path)
    with _file_faults(path):
        if _is_dicom_image(path):
            return _image_and_grid(path)[0]
        data, affine, sha256 = _read_any(path, segmentation=False)
    return image_from_array(data, affine, os.path.abspath(path), sha256=sha256)


@contextmanager
def _file_faults(path: str | Path | Any) -> Iterator[None]:
    """The operating system's refusal to read a file (permission denied, an I/O error...) as one line naming it."""
    try:
        yield
    except OSError as error:
        raise DENError(getattr(error, "filename", None) or path,
                       f"cannot be read ({(error.strerror or str(error)).lower()})") from None


def _folder_as_segmentation(folder: Path) -> str:
    """Why a folder cannot be a segmentation, by what it holds: volume files (give them, or run the folder as a
    cohort), or a DICOM series (give it as the image, with its DICOM SEG)."""
    names = [entry.name.lower() for entry in itertools.islice(os.scandir(folder), FOLDER_ENTRIES_LOOKED_AT)]
    volumes = [name for name in names if name.endswith(VOLUME_SUFFIXES) and not name.endswith(DICOM_SUFFIXES)]
    if volumes:
        return (f"a folder of volume files ({volumes[0]}...), not a segmentation file: give the files themselves, or "
                f"run the folder as a cohort: --cohort {folder} --pattern '{{id}}{_suffix(volumes[0])}'")
    return "a folder is a DICOM image series: give it as --image, and its DICOM SEG file as the segmentation"


def check_readable(path: str | Path) -> None:
    """Raise :class:`DENError` unless ``path`` is an existing file with a volume suffix or DICOM preamble, or a
    folder (a DICOM series) (a cheap check, no reading)."""
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise DENError(path, "no such file") from None
    except OSError as error:  # a name too long for the file system, a loop of links...
        raise DENError(path, f"cannot be read ({(error.strerror or str(error)).lower()})") from None
    if stat.S_ISDIR(status.st_mode):
        return
    if not stat.S_ISREG(status.st_mode):
        raise DENError(path, "not a file")
    if not (path.name.lower().endswith(VOLUME_SUFFIXES) or _is_dicom_file(path)):
        raise DENError(path, "not a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr, .seg.nrrd) or DICOM (.dcm, or a "
                             "series folder) file")


def source_sha256(path: str | Path, series: str | None = None) -> str:
    """The sha256 a reader records for ``path``: the file's bytes, plus a NRRD's detached data file's bytes; a
    DICOM folder's files (only those of ``series`` when one is chosen)."""
    path = Path(path)
    check_readable(path)
    if series is not None and _is_dicom_image(path):
        return series_sha256(path, series)
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


def _suffix(name: str) -> str:
    """The volume suffix a file name ends with (``.nii.gz``...)."""
    return next(suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix))


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
