"""Reading the header and the voxel bytes of a NRRD file safely.

The header is read from at most :data:`MAX_HEADER_BYTES`; a detached data file (``data file:``) must be a regular
file inside the header's own folder; raw, gzip and bzip2 payloads are read or decompressed only up to the byte count
the header declares (after checking that count against the input limit), so a small file cannot expand into
gigabytes and a path in a header cannot reach a device, a FIFO or another folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from .decompress import DecompressingInput
from .limits import exceeds_limit
from .stream import HashedInput, open_inside

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


class NrrdFile:
    """An open NRRD file: its header (parsed by pynrrd), its header lines, and the one stream its bytes are read
    and hashed through (the detached data file, if any, continues the same digest)."""

    def __init__(self, header: dict, lines: list[str], header_path: Path, stream: HashedInput) -> None:
        self.header, self.lines, self.header_path = header, lines, header_path
        self._stream = stream
        self.data_name = _data_file_name(header, header_path)

    @property
    def data_path(self) -> Path:
        """The file holding the voxels: the header file, or the detached data file beside it."""
        return self.header_path if self.data_name is None else self.header_path.parent / self.data_name

    @property
    def sha256(self) -> str:
        """sha256 of every byte read: the header file, then the detached data file if there is one."""
        return self._stream.sha256

    def read_voxels(self) -> np.ndarray:
        """Read the voxels the header declares, in Fortran (i, j, k[, ...]) order, bounded by the declared size;
        the rest of every file read is hashed."""
        header, source = self.header, self.header_path
        sizes = [int(size) for size in np.atleast_1d(header.get("sizes", []))]
        if not sizes or min(sizes) < 1:
            raise DENError(source, f"invalid NRRD sizes {sizes}")
        dtype = _numpy_dtype(header, source)
        expected = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
        problem = exceeds_limit(expected)
        if problem:
            raise DENError(source, problem)
        encoding = str(header.get("encoding", "raw")).lower()
        if encoding not in ("raw", "gzip", "gz", "bzip2", "bz2"):
            raise DENError(source, f"unsupported NRRD encoding {encoding!r}: use raw, gzip or bzip2")
        if self.data_name is None:
            return self._payload(self._stream, sizes, dtype, expected, encoding)
        self._stream.drain()
        with open_inside(self.header_path.parent, self.data_name, source) as handle:
            data_stream = HashedInput(handle, self._stream.digest)
            return self._payload(data_stream, sizes, dtype, expected, encoding)

    def hash_all(self) -> str:
        """Hash the rest of the header file and the whole detached data file without parsing the voxels."""
        self._stream.drain()
        if self.data_name is not None:
            with open_inside(self.header_path.parent, self.data_name, self.header_path) as handle:
                HashedInput(handle, self._stream.digest).drain()
        return self.sha256

    def _payload(self, stream: HashedInput, sizes: list[int], dtype: np.dtype, expected: int,
                 encoding: str) -> np.ndarray:
        """The voxel bytes from ``stream`` after the skips, decoded; then the rest of the file is hashed."""
        data_path = self.data_path
        in_data = "" if self.data_name is None else f"its data file {self.data_name}: "
        _skip(stream, self.header, expected, encoding, self.header_path, in_data)
        content = stream if encoding == "raw" else DecompressingInput(
            stream, "gzip" if encoding.startswith("gz") else "bzip2", data_path)
        payload = bytearray(expected)
        filled = content.read_into(memoryview(payload))
        stream.drain()
        if filled < expected:
            raise DENError(self.header_path, f"{in_data}truncated voxel data: {filled} of {expected} bytes")
        return np.frombuffer(payload, dtype=dtype).reshape(sizes, order="F")


@contextmanager
def open_nrrd(path: Path) -> Iterator[NrrdFile]:
    """Open a NRRD file once and parse its header; the voxels are read with :meth:`NrrdFile.read_voxels`."""
    import nrrd

    with open(path, "rb") as handle:
        stream = HashedInput(handle)
        head = stream.read(MAX_HEADER_BYTES + 1)
        end = _header_end(head)
        if end is None:
            raise DENError(path, f"no end of the NRRD header within its first {MAX_HEADER_BYTES // 1024} KiB")
        stream.unread(head[end:])
        lines = head[:end].decode("ascii", "replace").splitlines()
        try:
            header = nrrd.read_header(lines)
        except Exception as error:  # pynrrd raises NRRDError, ValueError... on malformed fields
            raise DENError(path, f"not a readable NRRD header ({describe_error(error)})") from None
        yield NrrdFile(header, lines, path, stream)


def nrrd_sha256(path: Path) -> str:
    """The sha256 a NRRD reader records: the header file's bytes, then its detached data file's."""
    with open_nrrd(path) as nrrd_file:
        return nrrd_file.hash_all()


def _header_end(head: bytes) -> int | None:
    """Offset where the data starts: after the first empty line (``\n`` or ``\r\n`` line ends), or the whole
    text when a detached header has none. Bytes after that line are voxels, whatever they contain."""
    start = 0
    while True:
        newline = head.find(b"\n", start)
        if newline < 0:
            return len(head) if len(head) <= MAX_HEADER_BYTES else None
        if start > 0 and head[start:newline].rstrip(b"\r") == b"":
            return newline + 1
        start = newline + 1


def _data_file_name(header: dict, path: Path) -> str | None:
    """The detached data file's name as the header gives it (checked when it is opened), or None if attached."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    name = str(name).strip()
    if name.upper().startswith("LIST") or " " in name or "%" in name:
        raise DENError(path, "multi-file NRRD data ('data file' lists or patterns) is not supported")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise DENError(path, f"its 'data file' {name!r} lies outside the header's folder: refused")
    return name


def _numpy_dtype(header: dict, source: Path) -> np.dtype:
    """The numpy type of the voxels from the header's ``type`` and ``endian`` fields."""
    code = NRRD_TYPE_TO_NUMPY.get(str(header.get("type", "")).strip().lower())
    if code is None:
        raise DENError(source, f"unsupported NRRD voxel type {header.get('type')!r}")
    if code[1] == "1":
        return np.dtype(code)
    return np.dtype(("<" if str(header.get("endian", "little")).lower() == "little" else ">") + code)


def _skip(stream: HashedInput, header: dict, expected: int, encoding: str, source: Path, in_data: str) -> None:
    """Move ``stream`` to the first payload byte: ``line skip`` lines, then ``byte skip`` bytes (-1: the last
    ``expected`` bytes of a raw file). Faults are reported against ``source``, the header the user gave, ``in_data``
    naming a detached data file (``"its data file x.raw: "``) where the fault is found in it."""
    try:
        line_skip = int(header.get("line skip", header.get("lineskip", 0)) or 0)
        byte_skip = int(header.get("byte skip", header.get("byteskip", 0)) or 0)
    except (TypeError, ValueError):
        raise DENError(source, "'line skip' and 'byte skip' must be whole numbers") from None
    if line_skip < 0:
        raise DENError(source, f"'line skip' {line_skip} is negative")
    for _ in range(line_skip):
        if not stream.readline(MAX_HEADER_BYTES):
            raise DENError(source, f"{in_data}'line skip' runs past the end of the data file")
    if byte_skip == -1 and encoding == "raw":
        size = stream.file_size()
        if size - stream.consumed < expected:
            raise DENError(source, f"{in_data}truncated voxel data: {max(size - stream.consumed, 0)} of {expected} "
                                   "bytes")
        stream.skip(size - expected - stream.consumed)
    elif byte_skip < 0:
        raise DENError(source, f"'byte skip' {byte_skip} is only valid (as -1) for raw data")
    elif stream.skip(byte_skip) < byte_skip:
        raise DENError(source, f"{in_data}'byte skip' {byte_skip} runs past the end of the data file")
