"""Atomic file writing: write to a temporary file in the target folder, then rename over the target.

Temporary files are named ``.den-partial-*`` (short, whatever the target's length), so a run can remove those an
interrupted run left behind (:func:`remove_leftover_partials`).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DENError

PARTIAL_PREFIX = ".den-partial-"
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
        handle, temporary_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=suffix, dir=target.parent)
        os.close(handle)
        temporary = Path(temporary_name)
        os.chmod(temporary, 0o666 & ~_current_umask())
        yield temporary
        os.replace(temporary, target)
    except OSError as error:
        if error.errno == errno.ENOSPC or (error.errno is None and disk_is_full(target.parent)):
            raise DENError(target.parent, "no space left on device: free some space and rerun (with --resume)") from None
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise DENError(target.parent, f"cannot write here ({os.strerror(error.errno).lower()})") from None
        raise
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``target`` atomically; return ``target``."""
    with atomic_path(target) as temporary:
        write(temporary)
    return Path(target)


def remove_leftover_partials(folder: str | Path) -> int:
    """Delete temporary files of our own naming that an interrupted run left in ``folder``; return how many."""
    removed = 0
    for leftover in Path(folder).glob(f"{PARTIAL_PREFIX}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


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
