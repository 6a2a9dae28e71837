"""Checking the output folder before any work: it must be a folder we can create and write to."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DENError
from .atomic import partial_prefix, remove_leftover_partials

PROBE_BYTES = 4096


def prepare_output_folder(folder: str | Path, *, remove_partials: bool = True) -> Path:
    """Create ``folder`` if needed, prove that a file can be written in it, and clear the leftover temporaries of
    processes of this host that no longer run; with ``remove_partials`` (not for the parts of an array job, which
    share the folder with other nodes' work in progress) every other leftover temporary too.

    Raises :class:`DENError` naming the folder when it is a file, lies under a file, is on a read-only file system,
    is not writable, or its disk is full. Returns the folder's absolute path.
    """
    folder = Path(folder).expanduser().absolute()
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DENError(folder, "the output path exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=partial_prefix(), suffix=".probe", dir=folder)
        try:
            os.write(handle, b"\0" * PROBE_BYTES)
            os.fsync(handle)
        finally:
            os.close(handle)
            Path(probe).unlink(missing_ok=True)
    except OSError as error:
        raise DENError(folder, f"unusable output folder: {_reason(error, folder)}") from None
    if removed := remove_leftover_partials(folder, every_host=remove_partials):
        logging.getLogger(__name__).info("removed %d temporary file(s) an interrupted run left in %s", removed, folder)
    return folder


@contextmanager
def removed_if_left_empty(folder: str | Path) -> Iterator[None]:
    """Around a run: afterwards (whether it succeeded, failed or was interrupted), remove ``folder`` and the parents
    the run created if they are still empty, so a refused or failed run leaves no empty output folder behind."""
    folder = Path(folder).expanduser().absolute()
    missing = [path for path in (folder, *folder.parents) if not os.path.exists(path)]  # False for too-long paths
    try:
        yield
    finally:
        for path in missing:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def _reason(error: OSError, folder: Path) -> str:
    """A plain sentence for why the output folder cannot be used."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((parent for parent in folder.parents if os.path.exists(parent) and not os.path.isdir(parent)),
                       None)
        return f"{blocker} is a file, not a folder" if blocker else "a part of the path is a file, not a folder"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENAMETOOLONG:
        return f"the path is too long for the file system ({len(str(folder))} characters): choose a shorter one"
    return os.strerror(error.errno or 0).lower() if error.errno else str(error)
