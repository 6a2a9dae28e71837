"""What every DICOM reader shares: reading one file's header with pydicom (its bytes hashed as they are read),
the SOP classes DEN knows, and the geometry of a stack of equally oriented planes.

pydicom parses the files (the reference DICOM parser in Python, maintained with the standard's yearly releases);
highdicom decodes the pixels (see the readers). Before either reads a file in full, the file's size is checked
against the memory bound and a Deflated file's stream is inflated once, counting, and refused when it would exceed
the bound (a deflate bomb). Neither library's warnings reach the terminal. Files are read only from inside the
folder given, never through a link leading out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from .limits import MAX_INPUT_ENVIRONMENT_VARIABLE, max_input_bytes

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_SOP_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
DEFLATED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1.99"
UNCOMPRESSED_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                                  DEFLATED_TRANSFER_SYNTAX)
MAX_FRAMES = 20000
"""Most frames one DICOM file may declare: parsing each frame's description costs about a millisecond, so this
bounds a header's parse to seconds (a BraTS SEG of 4 segments on 155 planes has at most 620)."""
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230
MAX_FRAME_DESCRIPTION_BYTES = 4 * 2**10
"""Most bytes one frame's description may take (about ten times what highdicom writes per SEG frame, 440, dcmqi,
600, and highdicom's legacy converter per enhanced MR frame, 400): a file describing more frames than it declares is
refused before they are parsed (pydicom parses an undefined-length description in about 1-4 ms)."""
HEADER_SLACK_BYTES = 2**20
"""What may follow the per-frame descriptions besides the pixel data (trailing elements, padding)."""
COMPRESSED_SLACK = 2
"""How many times the decoded size encapsulated (compressed) pixel data may take in the file."""
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
DICOM_HINT = "pip install -e '.[dicom]' from a DENExtractor checkout (or pip install pydicom)"
MAX_SERIES_FILES = 16384
"""Most files a series folder may hold (the longest axis DEN accepts)."""
HEADER_ALLOWANCE_BYTES = 64 * 2**20
"""What one DICOM file may hold beyond the input memory bound: its header (a SEG's per-frame descriptions)."""
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOLERANCE = 1e-4
"""Largest difference between two direction cosines that still counts as the same orientation."""


for _library in ("pydicom", "highdicom"):  # their log records go to the caller's handlers, never straight to stderr
    logging.getLogger(_library).addHandler(logging.NullHandler())


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """pydicom's and highdicom's warnings (a non-conformant value, a missing optional attribute) silenced: DEN
    reports a fault in one line of its own or not at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
    _refuse_deflate_bomb(path)
    _refuse_long_frame_descriptions(path, size)
    try:
        with quietly():
            header = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as error:  # pydicom raises many kinds on malformed input
        raise DENError(path, f"not a readable DICOM file ({describe_error(error)})") from None
    if "SOPClassUID" not in header:
        raise DENError(path, "not a DICOM file (no SOP Class UID)")
    return DicomFile(path, header)


def _refuse_deflate_bomb(path: Path) -> None:
    """A file in the Deflated transfer syntax is inflated once, in chunks, counting: refused when its dataset
    would exceed the memory bound (pydicom inflates it whole while reading even the header)."""
    import pydicom

    try:
        with quietly(), open(path, "rb") as handle:
            pydicom.filereader.read_preamble(handle, force=True)
            meta = pydicom.filereader._read_file_meta_info(handle)
            if str(meta.get("TransferSyntaxUID", "")) != DEFLATED_TRANSFER_SYNTAX:
                return
            limit = max_input_bytes() + HEADER_ALLOWANCE_BYTES
            inflater, inflated = zlib.decompressobj(-zlib.MAX_WBITS), 0
            while chunk := handle.read(1 << 20):
                while chunk:
                    inflated += len(inflater.decompress(chunk, 1 << 24))
                    chunk = inflater.unconsumed_tail
                    if inflated > limit:
                        raise DENError(path, f"its Deflated dataset inflates to more than {limit / 2**30:.2f} GiB, "
                                             f"above the input limit (set {MAX_INPUT_ENVIRONMENT_VARIABLE} to raise "
                                             "it)")
    except DENError:
        raise
    except Exception as error:  # a malformed preamble, meta group or deflate stream
        raise DENError(path, f"not a readable DICOM file ({describe_error(error)})") from None


def _refuse_long_frame_descriptions(path: Path, size: int) -> None:
    """Refuse a file whose per-frame descriptions (Per-frame Functional Groups Sequence) take more bytes than the
    frames it declares can need, before pydicom parses them (it parses an undefined-length sequence whole, item by
    item, while reading the header): the header up to that sequence is read first, and the bytes that follow are
    weighed against the declared frames and their pixels."""
    import pydicom

    stopped_at: list[int] = []

    def at_descriptions(tag: int, vr: object, length: int) -> bool:
        """Stop at the descriptions, or at whatever comes after where they would be."""
        if tag >= PER_FRAME_FUNCTIONAL_GROUPS:
            stopped_at.append(tag)
        return bool(stopped_at)

    try:
        with quietly(), open(path, "rb") as handle:
            head = pydicom.filereader.read_partial(handle, stop_when=at_descriptions, force=True)
            start = handle.tell()
            syntax = str(getattr(getattr(head, "file_meta", None), "TransferSyntaxUID", ""))
            frames = int(head.get("NumberOfFrames", 1) or 1)
            pixels = int(head.get("Rows", 0) or 0) * int(head.get("Columns", 0) or 0) * int(
                head.get("BitsAllocated", 0) or 0) * int(head.get("SamplesPerPixel", 1) or 1) // 8
    except (TypeError, ValueError):
        return  # a malformed size: the readers refuse it naming the attribute
    except Exception as error:  # a malformed preamble, meta group or element before the descriptions
        raise DENError(path, f"not a readable DICOM file ({describe_error(error)})") from None
    if syntax == DEFLATED_TRANSFER_SYNTAX or stopped_at[:1] != [PER_FRAME_FUNCTIONAL_GROUPS]:
        return  # a Deflated file's positions are in its inflated stream (bounded above); no descriptions follow
    if frames > MAX_FRAMES:
        raise DENError(path, f"the header declares {frames} frames, more than the {MAX_FRAMES} DEN reads in one file")
    allowed = frames * (MAX_FRAME_DESCRIPTION_BYTES + pixels * COMPRESSED_SLACK) + HEADER_SLACK_BYTES
    if size - start > allowed:
        raise DENError(path, f"its per-frame descriptions and pixel data take {(size - start) / 2**20:.1f} MiB where "
                             f"its header declares {frames} frames ({allowed / 2**20:.1f} MiB at most): it describes "
                             "more frames than it declares, or is padded")


def check_declared_pixels(dicom: DicomFile, frames: int, rows: int, columns: int, bits: int, samples: int = 1) -> None:
    """Refuse a file whose size does not fit the pixel data its header declares: truncated (uncompressed data
    shorter than declared) or padded (more than the declared pixel data and a header), before any is read."""
    syntax = str(getattr(getattr(dicom.header, "file_meta", None), "TransferSyntaxUID", ""))
    needed = (frames * rows * columns * samples * bits + 7) // 8
    size = dicom.path.stat().st_size
    if syntax in UNCOMPRESSED_TRANSFER_SYNTAXES[:3] and size < needed:
        raise DENError(dicom.path, f"truncated: the header declares {frames} frames ({needed} bytes of pixel data), "
                                   f"the file holds {size} bytes")
    allowed = needed * (1 if syntax in UNCOMPRESSED_TRANSFER_SYNTAXES else COMPRESSED_SLACK) + HEADER_ALLOWANCE_BYTES
    if syntax != DEFLATED_TRANSFER_SYNTAX and size > allowed:
        raise DENError(dicom.path, f"the file holds {size / 2**20:.1f} MiB where its header declares {frames} frames "
                                   f"of {rows} x {columns} ({needed / 2**20:.1f} MiB of pixel data): padded or "
                                   "malformed")


def read_dataset(dicom: DicomFile, hasher: Any) -> Any:
    """The whole dataset, pixel data included (not yet decoded), parsed by pydicom from the file's bytes, every
    one of which goes into ``hasher``."""
    import pydicom

    data = dicom.path.read_bytes()
    hasher.update(data)
    try:
        with quietly():
            return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as error:  # the file changed since its header was read, or is malformed past the header
        raise DENError(dicom.path, f"not a readable DICOM file ({describe_error(error)})") from None


def read_pixels(dicom: DicomFile, hasher: Any) -> np.ndarray:
    """The file's stored pixel values, (frames, rows, columns) or (rows, columns), decoded by pydicom; every byte
    read goes into ``hasher``. One-line :class:`DENError` for truncated or undecodable pixel data."""
    dataset = read_dataset(dicom, hasher)
    try:
        with quietly():
            return np.asarray(dataset.pixel_array)
    except Exception as error:  # truncated data, an unsupported compression...
        raise DENError(dicom.path, f"the pixel data cannot be read: truncated, corrupt or compressed in a way "
                                   f"pydicom cannot decode here ({describe_error(error)})") from None


def files_inside(folder: Path) -> list[Path]:
    """The regular files directly in ``folder`` (no subfolders, no hidden files, no DICOMDIR), refusing a link that
    leads out of the folder; sorted by name. A file given instead of a folder is its only file (an enhanced image).
    """
    if folder.is_file():
        return [folder]
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


def in_normal_order(volume: Any) -> Any:
    """A highdicom ``Volume`` or ``VolumeGeometry`` with its planes running along the row x column normal (as the
    series reader lays out a series: k from the lowest plane along the normal)."""
    row, column, slices = volume.unit_vectors()[2], volume.unit_vectors()[1], volume.unit_vectors()[0]
    return volume.flip_spatial(0) if float(np.cross(row, column) @ slices) < 0 else volume


def ijk_affine(volume: Any) -> np.ndarray:
    """The voxel-to-RAS affine of a highdicom volume (or geometry) indexed (i, j, k) = (column, row, plane)."""
    return LPS_TO_RAS @ np.asarray(volume.affine)[:, [2, 1, 0, 3]]


def ijk_array(volume: Any) -> np.ndarray:
    """A highdicom volume's array (planes, rows, columns) as (i, j, k), laid out in memory as nibabel holds a NIfTI."""
    return np.asarray(volume.array).transpose(2, 1, 0)


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
