"""Reading the header and the voxel bytes of a NRRD file safely.

The header is read from at most :data:`MAX_HEADER_BYTES`; a detached data file (``data file:``) must be a regular
file inside the header's own folder; raw, gzip and bzip2 payloads are read or decompressed only up to the byte count
the header declares (after checking that count against the input limit), so a small file cannot expand into
gigabytes and a path in a header cannot reach a device, a FIFO or another folder.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..hashing import file_sha256
from .decompress import read_decompressed
from .limits import exceeds_limit

MAX_HEADER_BYTES = 1 << 20
"""Longest NRRD header read (1 MiB); real headers, Slicer's included, are a few kilobytes."""

_NUMPY_TYPES = {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",),
    "f8": ("double",),
}
NRRD_TYPE_TO_NUMPY = {name: code for code, names in _NUMPY_TYPES.items() for name in names}


@dataclass
class NrrdFile:
    """A NRRD header parsed by pynrrd, where its data starts, and the file that holds the data."""

    header: dict
    header_path: Path
    data_path: Path
    data_offset: int

    @property
    def sha256(self) -> str:
        """sha256 of every byte read: the header file, then the detached data file if there is one."""
        if self.data_path == self.header_path:
            return file_sha256(self.header_path)
        return file_sha256(self.header_path, self.data_path)


def read_nrrd_header(path: Path) -> NrrdFile:
    """Parse a NRRD header and locate its data (attached, or a detached file inside the header's folder)."""
    import nrrd

    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES + 1)
    end = _header_end(head)
    if end is None:
        raise DENError(path, f"no end of the NRRD header within its first {MAX_HEADER_BYTES // 1024} KiB")
    lines = head[:end].decode("ascii", "replace").splitlines()
    try:
        header = nrrd.read_header(lines)
    except Exception as error:  # pynrrd raises NRRDError, ValueError... on malformed fields
        raise DENError(path, f"not a readable NRRD header ({describe_error(error)})") from None
    data_path = _data_file(header, path)
    return NrrdFile(header, path, data_path or path, 0 if data_path else end)


def read_nrrd_voxels(nrrd_file: NrrdFile) -> np.ndarray:
    """Read the voxels the header declares, in Fortran (i, j, k[, ...]) order, bounded by the declared size."""
    header, source = nrrd_file.header, nrrd_file.header_path
    sizes = [int(size) for size in np.atleast_1d(header.get("sizes", []))]
    if not sizes or min(sizes) < 1:
        raise DENError(source, f"invalid NRRD sizes {sizes}")
    dtype = _numpy_dtype(header, source)
    expected = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    problem = exceeds_limit(expected)
    if problem:
        raise DENError(source, problem)
    encoding = str(header.get("encoding", "raw")).lower()
    with open(nrrd_file.data_path, "rb") as handle:
        _skip(handle, header, nrrd_file.data_offset, expected, encoding, nrrd_file.data_path)
        if encoding == "raw":
            payload = handle.read(expected)
        elif encoding in ("gzip", "gz"):
            payload = read_decompressed(handle, expected, "gzip", nrrd_file.data_path)
        elif encoding in ("bzip2", "bz2"):
            payload = read_decompressed(handle, expected, "bzip2", nrrd_file.data_path)
        else:
            raise DENError(source, f"unsupported NRRD encoding {encoding!r}: use raw, gzip or bzip2")
    if len(payload) < expected:
        raise DENError(nrrd_file.data_path, f"truncated voxel data: {len(payload)} of {expected} bytes")
    return np.frombuffer(payload, dtype=dtype).reshape(sizes, order="F")


def _header_end(head: bytes) -> int | None:
    """Offset where the data starts (after the blank line), or the whole text when a detached header has none."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = head.find(separator)
        if index >= 0:
            return index + len(separator)
    return len(head) if len(head) <= MAX_HEADER_BYTES else None


def _data_file(header: dict, path: Path) -> Path | None:
    """The detached data file, checked to be a regular file inside the header's folder, or None if attached."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    name = str(name).strip()
    if name.upper().startswith("LIST") or " " in name or "%" in name:
        raise DENError(path, "multi-file NRRD data ('data file' lists or patterns) is not supported")
    folder = path.parent.resolve()
    target = (folder / name).resolve()
    if target.parent != folder and folder not in target.parents:
        raise DENError(path, f"its 'data file' {name!r} lies outside the header's folder: refused")
    try:
        status = target.stat()
    except OSError:
        raise DENError(path, f"its 'data file' {name!r} does not exist") from None
    if not stat.S_ISREG(status.st_mode):
        raise DENError(path, f"its 'data file' {name!r} is not a regular file: refused")
    return target


def _numpy_dtype(header: dict, source: Path) -> np.dtype:
    """The numpy type of the voxels from the header's ``type`` and ``endian`` fields."""
    code = NRRD_TYPE_TO_NUMPY.get(str(header.get("type", "")).strip().lower())
    if code is None:
        raise DENError(source, f"unsupported NRRD voxel type {header.get('type')!r}")
    if code[1] == "1":
        return np.dtype(code)
    return np.dtype(("<" if str(header.get("endian", "little")).lower() == "little" else ">") + code)


def _skip(handle, header: dict, offset: int, expected: int, encoding: str, data_path: Path) -> None:
    """Move ``handle`` to the first payload byte: the header's end, then ``line skip`` lines and ``byte skip`` bytes."""
    handle.seek(offset)
    for _ in range(int(header.get("line skip", header.get("lineskip", 0)) or 0)):
        if not handle.readline(MAX_HEADER_BYTES):
            raise DENError(data_path, "'line skip' runs past the end of the data file")
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)) or 0)
    if byte_skip == -1 and encoding == "raw":
        size = data_path.stat().st_size
        if size < expected:
            raise DENError(data_path, f"truncated voxel data: {size} of {expected} bytes")
        handle.seek(size - expected)
    elif byte_skip > 0:
        handle.seek(byte_skip, 1)
    elif byte_skip < 0:
        raise DENError(data_path, f"'byte skip' {byte_skip} is only valid for raw data")
