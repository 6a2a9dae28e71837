"""Atomic file writing: write to a temporary file in the target folder, then rename over the target.

Temporary files are named ``.den-partial-HOST-PID-*`` (short, whatever the target's length): the host and process
that write them, so a run can remove those that a killed process left behind (:func:`remove_leftover_partials`)
while other processes, and the nodes of an array job sharing the folder, keep theirs. The file is flushed to disk
(fsync) before the rename, and the folder after it, so a crash leaves either the old file or the whole new one.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DENError

PARTIAL_PREFIX = ".den-partial-"
MAX_HOST_CHARACTERS = 24
PARTIAL_NAME = re.compile(r"\.den-partial-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-")
FULL_DISK_BYTES = 1 << 20
"""Free space below which a failed write is reported as a full disk."""


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``, on failure delete it.

    Readers never see a half-written file: the target either keeps its old content or gets the complete new one.
    The temporary name keeps the target's suffix, so libraries that choose a format by suffix still work. A full
    disk is reported as a :class:`DENError` naming the folder.
    """
    target = Path(target)
    suffix = "".join(target.suffixes[-2:])[-32:] or ".tmp"
    temporary: Path | None = None
    try:
        handle, temporary_name = tempfile.mkstemp(prefix=partial_prefix(), suffix=suffix, dir=target.parent)
        os.close(handle)
        temporary = Path(temporary_name)
        os.chmod(temporary, 0o666 & ~_current_umask())
        yield temporary
        _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, target)
        _fsync(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        if error.errno == errno.ENOSPC or (error.errno is None and disk_is_full(target.parent)):
            raise DENError(target.parent, "no space left on device: free some space and rerun (with --resume)") from None
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise DENError(target.parent, f"cannot write here ({os.strerror(error.errno).lower()})") from None
        if error.errno == errno.ENAMETOOLONG:
            raise DENError(str(target)[:80] + "...", f"the output path is too long for the file system "
                                                     f"({len(str(target))} characters): choose a shorter output "
                                                     "folder") from None
        raise
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def write_atomically(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``target`` atomically; return ``target``."""
    with atomic_path(target) as temporary:
        write(temporary)
    return Path(target)


def partial_prefix() -> str:
    """The temporary-file prefix of this process: ``.den-partial-HOST-PID-``."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:MAX_HOST_CHARACTERS] or "host"
    return f"{PARTIAL_PREFIX}{host}-{os.getpid()}-"


def remove_leftover_partials(folder: str | Path, *, every_host: bool = False) -> int:
    """Delete temporary files of our own naming left in ``folder`` by processes of this host that are no longer
    running (a killed run or worker); with ``every_host``, also every other host's and the unnamed ones (once no
    part of an array job can still be writing). Returns how many were removed."""
    own_host = partial_prefix().split("-")[2]
    removed = 0
    for leftover in Path(folder).glob(f"{PARTIAL_PREFIX}*"):
        named = PARTIAL_NAME.match(leftover.name)
        stale = not _running(int(named["pid"])) if named and named["host"] == own_host else every_host
        if stale and leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path, flags: int) -> None:
    """Flush a file's (or a folder's) content to disk."""
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def disk_is_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left: some writers (numpy's ``tofile``)
    report a short write without an error number."""
    try:
        status = os.statvfs(folder)
    except OSError:
        return False
    return status.f_bavail * status.f_frsize < FULL_DISK_BYTES


def _current_umask() -> int:
    """The process umask (read by setting and restoring it), so outputs get the usual permissions, not 0600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
