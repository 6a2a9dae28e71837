"""Reading an input file once, front to back, hashing exactly the bytes that are parsed.

A reader opens each file once and reads it through a :class:`HashedInput`: every byte taken from the file goes
into one sha256, and :meth:`HashedInput.drain` hashes the rest of the file after parsing. The digest recorded in
provenance is therefore the digest of the bytes the features were computed from, even if the file is replaced
while it is read. A NRRD's detached data file is opened once with :func:`open_inside`, which follows no symbolic
link and checks the opened file itself (a regular file), so it cannot be swapped for a link, a FIFO or a device
between a check and the open.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from ..errors import DENError

CHUNK_BYTES = 1 << 20


class HashedInput:
    """Sequential reading of one open file (then possibly another, into the same digest), hashing what is read."""

    def __init__(self, handle: BinaryIO, digest: hashlib._Hash | None = None) -> None:
        self._handle = handle
        self.digest = digest if digest is not None else hashlib.sha256()
        self._pending = b""
        self.consumed = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the file)."""
        buffer = bytearray(size)
        filled = self.read_into(memoryview(buffer))
        del buffer[filled:]
        return bytes(buffer)

    def read_into(self, target: memoryview) -> int:
        """Fill ``target`` from the file (no intermediate copy of the whole); return how many bytes were read."""
        filled = min(len(self._pending), len(target))
        target[:filled] = self._pending[:filled]
        self._pending = self._pending[filled:]
        while filled < len(target):
            count = self._handle.readinto(target[filled : filled + CHUNK_BYTES])  # type: ignore[attr-defined]
            if not count:
                break
            self.digest.update(target[filled : filled + count])
            filled += count
        self.consumed += filled
        return filled

    def read_chunk(self) -> bytes:
        """The next chunk of the file (empty at its end)."""
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._handle.read(CHUNK_BYTES)
            self.digest.update(data)
        self.consumed += len(data)
        return data

    def unread(self, data: bytes) -> None:
        """Give back bytes already read (and hashed) so that the next read returns them first."""
        self._pending = bytes(data) + self._pending
        self.consumed -= len(data)

    def skip(self, count: int) -> int:
        """Read and discard ``count`` bytes (bounded memory); return how many there were."""
        skipped = 0
        while skipped < count:
            data = self.read(min(CHUNK_BYTES, count - skipped))
            if not data:
                break
            skipped += len(data)
        return skipped

    def readline(self, limit: int) -> bytes:
        """One line (with its newline) of at most ``limit`` bytes."""
        line = bytearray()
        while len(line) < limit:
            data = self.read_chunk()
            if not data:
                break
            end = data.find(b"\n")
            if end >= 0 and len(line) + end < limit:
                line += data[: end + 1]
                self.unread(data[end + 1 :])
                return bytes(line)
            line += data
        self.unread(bytes(line[limit:]))
        return bytes(line[:limit])

    def file_size(self) -> int:
        """The size of the open file."""
        return os.fstat(self._handle.fileno()).st_size

    def drain(self) -> None:
        """Hash the rest of the file without keeping it."""
        self._pending = b""
        for chunk in iter(lambda: self._handle.read(CHUNK_BYTES), b""):
            self.digest.update(chunk)

    @property
    def sha256(self) -> str:
        """The hex digest of every byte read so far."""
        return self.digest.hexdigest()


def open_inside(folder: Path, name: str, source: Path) -> BinaryIO:
    """Open ``folder/name`` for reading without following any symbolic link, and only if it is a regular file.

    ``name`` must be a relative path without ``..``; every folder on the way is opened relative to the previous one
    with ``O_NOFOLLOW``, and the opened file's own status is checked, so what is read is what was checked.
    Raises :class:`DENError` naming ``source`` (the header that named the file).
    """
    parts = Path(name).parts
    if Path(name).is_absolute() or not parts or ".." in parts:
        raise DENError(source, f"its 'data file' {name!r} lies outside the header's folder: refused")
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    directory_flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow
    try:
        folder_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        raise DENError(source, "the header's folder cannot be opened") from None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, directory_flags, dir_fd=folder_fd)
            os.close(folder_fd)
            folder_fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0), dir_fd=folder_fd)
    except FileNotFoundError:
        raise DENError(source, f"its 'data file' {name!r} does not exist") from None
    except OSError:
        raise DENError(source, f"its 'data file' {name!r} is a symbolic link or not a regular file: refused") from None
    finally:
        os.close(folder_fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise DENError(source, f"its 'data file' {name!r} is not a regular file: refused")
    os.set_blocking(file_fd, True)
    return os.fdopen(file_fd, "rb")
