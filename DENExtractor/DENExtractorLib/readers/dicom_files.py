"""What every DICOM reader shares: reading one file's header with pydicom (its bytes hashed as they are read),
the SOP classes DEN knows, and the geometry of a stack of equally oriented planes.

pydicom parses the files (the reference DICOM parser in Python, maintained with the standard's yearly releases);
nothing here decodes pixels. Files are read only from inside the folder given, never through a link leading out.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from .limits import MAX_INPUT_ENVIRONMENT_VARIABLE, max_input_bytes

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DICOM_HINT = "pip install -e '.[dicom]' from a DENExtractor checkout (or pip install pydicom)"
MAX_SERIES_FILES = 16384
"""Most files a series folder may hold (the longest axis DEN accepts)."""
HEADER_ALLOWANCE_BYTES = 64 * 2**20
"""What one DICOM file may hold beyond the input memory bound: its header (a SEG's per-frame descriptions)."""
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOLERANCE = 1e-4
"""Largest difference between two direction cosines that still counts as the same orientation."""
RTSTRUCT_REFUSAL = ("an RTSTRUCT holds contours, not voxels, and DEN does not rasterise them itself; convert it to "
                    "a label map first (for example with 3D Slicer's SlicerRT or rt-utils), then give that file or "
                    "a DICOM SEG")


@dataclass(frozen=True)
class DicomFile:
    """One DICOM file's path and header (parsed up to the pixel data, which is read only when decoded)."""

    path: Path
    header: Any

    @property
    def sop_class(self) -> str:
        """The file's SOP Class UID."""
        return str(self.header.get("SOPClassUID", ""))


def read_header(path: Path) -> DicomFile:
    """Parse one file's header, stopping before the pixel data; one-line :class:`DENError` for a file that is not
    DICOM or is too large to be one, or when pydicom is not installed."""
    try:
        import pydicom
    except ImportError:
        raise DENError(path, f"reading DICOM needs pydicom, which is not installed: {DICOM_HINT}") from None

    size = path.stat().st_size
    if size > max_input_bytes() + HEADER_ALLOWANCE_BYTES:
        raise DENError(path, f"the file holds {size / 2**30:.2f} GiB, above the {max_input_bytes() / 2**30:.2f} GiB "
                             f"input limit (set {MAX_INPUT_ENVIRONMENT_VARIABLE} to raise it)")
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as error:  # pydicom raises many kinds on malformed input
        raise DENError(path, f"not a readable DICOM file ({describe_error(error)})") from None
    if "SOPClassUID" not in header:
        raise DENError(path, "not a DICOM file (no SOP Class UID)")
    return DicomFile(path, header)


def read_pixels(dicom: DicomFile, hasher: Any) -> np.ndarray:
    """The file's stored pixel values, (frames, rows, columns) or (rows, columns), decoded by pydicom; every byte
    read goes into ``hasher``. One-line :class:`DENError` for truncated or undecodable pixel data."""
    import pydicom

    data = dicom.path.read_bytes()
    hasher.update(data)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        return np.asarray(dataset.pixel_array)
    except Exception as error:  # truncated data, an unsupported compression...
        raise DENError(dicom.path, f"the pixel data cannot be read: truncated, corrupt or compressed in a way "
                                   f"pydicom cannot decode here ({describe_error(error)})") from None


def refuse_rtstruct(dicom: DicomFile) -> None:
    """RTSTRUCT files are refused with what to convert them with."""
    if dicom.sop_class == RT_STRUCTURE_SET_STORAGE:
        raise DENError(dicom.path, RTSTRUCT_REFUSAL)


def files_inside(folder: Path) -> list[Path]:
    """The regular files directly in ``folder`` (no subfolders, no hidden files, no DICOMDIR), refusing a link that
    leads out of the folder; sorted by name."""
    if not folder.is_dir():
        raise DENError(folder, "no such DICOM series folder")
    real_folder = os.path.realpath(folder)
    found = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.name.startswith(".") or entry.name.upper() == "DICOMDIR" or not entry.is_file():
            continue
        if os.path.dirname(os.path.realpath(entry.path)) != real_folder:
            raise DENError(Path(entry.path), "a link leading out of the series folder: DEN reads only the files in it")
        found.append(Path(entry.path))
        if len(found) > MAX_SERIES_FILES:
            raise DENError(folder, f"more than {MAX_SERIES_FILES} files: not one DICOM series")
    if not found:
        raise DENError(folder, "the folder holds no files: expected the DICOM files of one image series")
    return found


def folder_sha256(folder: Path) -> str:
    """The sha256 a series reader records: every byte of the folder's files, taken in name order."""
    hasher = hashlib.sha256()
    for path in files_inside(folder):
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
    return hasher.hexdigest()


def plane_axes(orientation: Any, source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, normal) of an Image Orientation (Patient), in LPS; refuses a malformed one."""
    try:
        cosines = np.asarray([float(value) for value in orientation], dtype=np.float64)
    except (TypeError, ValueError):
        cosines = np.zeros(0)
    if cosines.shape != (6,) or not np.all(np.isfinite(cosines)):
        raise DENError(source, "the Image Orientation (Patient) is missing or malformed: expected 6 numbers")
    row, column = cosines[:3], cosines[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(column) - 1) > 1e-3 or abs(row @ column) > 1e-3:
        raise DENError(source, "the Image Orientation (Patient) is not two perpendicular unit vectors")
    return row, column, np.cross(row, column)


def numbers(value: Any, count: int, what: str, source: Path) -> np.ndarray:
    """``count`` finite numbers from a DICOM multi-value, or a one-line refusal naming ``what``."""
    try:
        values = np.asarray([float(item) for item in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise DENError(source, f"the {what} is missing or malformed: expected {count} numbers")
    return values


def stack_affine(row: np.ndarray, column: np.ndarray, normal: np.ndarray, spacing: np.ndarray, first: np.ndarray,
                 slice_spacing: float) -> np.ndarray:
    """Voxel (i = column index, j = row index, k = plane) to RAS: DICOM's LPS geometry as a NIfTI affine.

    ``spacing`` is Pixel Spacing (between rows, between columns); ``first`` the position of the first plane.
    """
    to_lps = np.eye(4)
    to_lps[:3, 0] = row * spacing[1]
    to_lps[:3, 1] = column * spacing[0]
    to_lps[:3, 2] = normal * slice_spacing
    to_lps[:3, 3] = first
    return LPS_TO_RAS @ to_lps


def even_positions(offsets: np.ndarray, source: Path, *, allow_gaps: bool) -> tuple[float, np.ndarray]:
    """(spacing, plane index of each offset) for plane offsets along the normal, sorted ascending.

    Planes must be evenly spaced: a series with a missing plane (``allow_gaps`` False) is refused, naming where;
    a segmentation's omitted empty planes (``allow_gaps`` True) are placed on the grid of the smallest spacing.
    """
    if offsets.size == 1:
        return 1.0, np.zeros(1, dtype=np.int64)
    steps = np.diff(offsets)
    if np.any(steps < 1e-3):
        raise DENError(source, "two planes lie at the same position: not one series (or a duplicated file)")
    spacing = float(steps.min())
    indices = np.round((offsets - offsets[0]) / spacing).astype(np.int64)
    if np.max(np.abs(offsets - offsets[0] - indices * spacing)) > max(1e-3, 1e-3 * spacing):
        raise DENError(source, "the planes are not evenly spaced: DEN needs a regular grid")
    if not allow_gaps and indices[-1] != offsets.size - 1:
        gap = int(np.argmax(steps > spacing * 1.5))
        raise DENError(source, f"a plane is missing: {steps[gap]:.3g} mm between planes {gap + 1} and {gap + 2} where "
                               f"the others are {spacing:.3g} mm apart (missing or unreadable file?)")
    return spacing, indices
