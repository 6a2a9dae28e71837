"""The memory bound every reader applies to what a header declares, before reading any voxel."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ..errors import DENError

DEFAULT_MAX_INPUT_GB = 1.0
"""Default largest in-memory size of one input volume, in GiB (a 512x512x1000 int16 CT is 0.5 GiB)."""

MAX_INPUT_ENVIRONMENT_VARIABLE = "DEN_MAX_INPUT_GB"
"""Environment variable that overrides :data:`DEFAULT_MAX_INPUT_GB` (for example ``DEN_MAX_INPUT_GB=4``)."""


def max_input_bytes() -> int:
    """The largest in-memory size of one input volume, in bytes: ``DEN_MAX_INPUT_GB`` or the default."""
    text = os.environ.get(MAX_INPUT_ENVIRONMENT_VARIABLE, "")
    try:
        gigabytes = float(text) if text.strip() else DEFAULT_MAX_INPUT_GB
    except ValueError:
        gigabytes = DEFAULT_MAX_INPUT_GB
    return int(max(gigabytes, 0.0) * 2**30)


def exceeds_limit(declared_bytes: int) -> str | None:
    """A sentence explaining why ``declared_bytes`` is too large to read, or None when it fits the bound."""
    limit = max_input_bytes()
    if declared_bytes <= limit:
        return None
    return (
        f"the header declares {declared_bytes / 2**30:.2f} GiB of voxels, above the {limit / 2**30:.2f} GiB limit "
        f"(set {MAX_INPUT_ENVIRONMENT_VARIABLE} to raise it)"
    )


def read_bounded_text(path: Path, limit: int, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; a FIFO, device or folder, a larger file or an
    unreadable one is refused with :class:`DENError` naming ``path`` (``what`` says what it should be)."""
    return read_bounded_bytes(path, limit, what).decode("utf-8", errors="replace")


def read_bounded_json_object(path: Path, limit: int, what: str) -> dict:
    """The JSON object in a regular file of at most ``limit`` bytes (a record, a manifest); :class:`DENError`
    naming ``path`` for a special or larger file, text that is not JSON (or nested too deeply to parse) or JSON
    that is not an object."""
    text = read_bounded_text(path, limit, what)
    try:
        value = json.loads(text)
    except RecursionError:
        raise DENError(path, "unreadable (JSON nested too deeply)") from None
    except ValueError as error:
        raise DENError(path, f"not a JSON {what} ({error})") from None
    if not isinstance(value, dict):
        raise DENError(path, f"not a {what} (a JSON object)")
    return value


def read_bounded_bytes(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`read_bounded_text`)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as error:
        raise DENError(path, f"cannot be read as a {what} ({error.strerror or error})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise DENError(path, f"not a regular file (a {_kind(status.st_mode)}): expected a {what}")
        if status.st_size > limit:
            raise DENError(path, f"{status.st_size} bytes is too large for a {what} (at most {limit})")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise DENError(path, f"cannot be read as a {what} ({error.strerror or error})") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise DENError(path, f"more than {limit} bytes is too large for a {what}")
    return data


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "device"),
             (stat.S_ISBLK, "device"), (stat.S_ISSOCK, "socket"))
    return next((word for test, word in kinds if test(mode)), "special file")
