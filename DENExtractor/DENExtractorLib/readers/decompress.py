"""Bounded decompression of gzip, zlib and bzip2 payloads: never more output than a header declares.

gzip and zlib streams are decompressed with zlib-ng where it is installed (it is a requirement: about 5x faster than
the standard library's zlib on a BraTS label map, and byte for byte the same output), else with ``zlib``.
"""

from __future__ import annotations

import bz2
import types
import zlib
from pathlib import Path

from ..errors import DENError, describe_error
from .stream import HashedInput

fast_zlib: types.ModuleType
try:
    from zlib_ng import zlib_ng as fast_zlib
except ImportError:  # no wheel for this platform: the standard library gives the same bytes, more slowly
    fast_zlib = zlib

OUTPUT_CHUNK_BYTES = 8 << 20
"""Largest piece of decompressed output produced at once (a bomb cannot come out as one huge piece)."""
GZIP_OR_ZLIB = zlib.MAX_WBITS | 32
"""``wbits`` that accepts a gzip or a zlib header."""


def gzip_decompressor():
    """A decompressor for one gzip (or zlib) member."""
    return fast_zlib.decompressobj(GZIP_OR_ZLIB)


class CorruptData(DENError):
    """Compressed data that cannot be decompressed (a reader may add what kind of file it is)."""


class DecompressingInput:
    """The decompressed content of a gzip (concatenated members followed) or bzip2 stream, read front to back.

    Output comes out in pieces of at most :data:`OUTPUT_CHUNK_BYTES` and only as much as asked for, so a small
    file cannot expand into more memory than the reader allocates from its header. Corrupt data raises
    :class:`DENError` naming ``source``.
    """

    def __init__(self, stream: HashedInput, encoding: str, source: Path) -> None:
        self._stream, self._encoding, self._source = stream, encoding, source
        self._decompressor = self._new_decompressor()
        self._pending = b""
        self._ended = False
        self.consumed = 0

    def read_into(self, target: memoryview) -> int:
        """Fill ``target`` with decompressed bytes; return how many (fewer only at the end of the data)."""
        filled = min(len(self._pending), len(target))
        target[:filled] = self._pending[:filled]
        self._pending = self._pending[filled:]
        while filled < len(target):
            piece = self._next_piece(len(target) - filled)
            if not piece:
                break
            target[filled : filled + len(piece)] = piece
            filled += len(piece)
        self.consumed += filled
        return filled

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes."""
        buffer = bytearray(size)
        del buffer[self.read_into(memoryview(buffer)) :]
        return bytes(buffer)

    def unread(self, data: bytes) -> None:
        """Give back decompressed bytes so that the next read returns them first."""
        self._pending = bytes(data) + self._pending
        self.consumed -= len(data)

    def skip(self, count: int) -> int:
        """Decompress and drop ``count`` bytes (one piece in memory at a time); return how many there were."""
        skipped = min(len(self._pending), count)
        self._pending = self._pending[skipped:]
        while skipped < count:
            piece = self._next_piece(count - skipped)
            if not piece:
                break
            skipped += len(piece)
        self.consumed += skipped
        return skipped

    def _new_decompressor(self):
        """A decompressor for one gzip/zlib member or one bzip2 stream."""
        return gzip_decompressor() if self._encoding == "gzip" else bz2.BZ2Decompressor()

    def _next_piece(self, limit: int) -> bytes:
        """At most ``limit`` (and :data:`OUTPUT_CHUNK_BYTES`) more decompressed bytes; empty at the end."""
        try:
            while not self._ended:
                decompressor = self._decompressor
                if decompressor.eof:
                    self._stream.unread(decompressor.unused_data)
                    data = self._stream.read_chunk() if self._encoding == "gzip" else b""
                    if not data:
                        self._ended = True
                        break
                    decompressor = self._decompressor = self._new_decompressor()
                else:
                    data = getattr(decompressor, "unconsumed_tail", b"")
                    if not data and getattr(decompressor, "needs_input", True):
                        data = self._stream.read_chunk()
                piece = decompressor.decompress(data, min(limit, OUTPUT_CHUNK_BYTES))
                if piece:
                    return piece
                if not data:
                    self._ended = True
        except (OSError, EOFError, ValueError, zlib.error, getattr(fast_zlib, "error", zlib.error)) as error:
            raise CorruptData(self._source, f"the compressed voxel data is corrupt ({describe_error(error)})") from None
        return b""
