"""Checking the output folder before any work: it must be a folder we can create and write to."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

from ..errors import DENError
from .atomic import PARTIAL_PREFIX, remove_leftover_partials

PROBE_BYTES = 4096


def prepare_output_folder(folder: str | Path, *, remove_partials: bool = True) -> Path:
    """Create ``folder`` if needed, prove that a file can be written in it, and clear our own leftover temporaries
    (unless ``remove_partials`` is False: the parts of an array job share the folder, and one part's temporaries
    are another's work in progress).

    Raises :class:`DENError` naming the folder when it is a file, lies under a file, is on a read-only file system,
    is not writable, or its disk is full. Returns the folder's absolute path.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise DENError(folder, "the output path exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".probe", dir=folder)
        try:
            os.write(handle, b"\0" * PROBE_BYTES)
            os.fsync(handle)
        finally:
            os.close(handle)
            Path(probe).unlink(missing_ok=True)
    except OSError as error:
        raise DENError(folder, f"unusable output folder: {_reason(error, folder)}") from None
    if remove_partials and (removed := remove_leftover_partials(folder)):
        logging.getLogger(__name__).info("removed %d temporary file(s) an interrupted run left in %s", removed, folder)
    return folder


def _reason(error: OSError, folder: Path) -> str:
    """A plain sentence for why the output folder cannot be used."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((parent for parent in folder.parents if parent.exists() and not parent.is_dir()), None)
        return f"{blocker} is a file, not a folder" if blocker else "a part of the path is a file, not a folder"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return os.strerror(error.errno or 0).lower() if error.errno else str(error)
