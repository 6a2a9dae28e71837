"""Atomic file writing: write to a temporary file in the target folder, then rename over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``, on failure delete it.

    Readers never see a half-written file: the target either keeps its old content or gets the complete new one.
    The temporary name keeps the target's suffix, so libraries that choose a format by suffix still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes[-2:]) or ".tmp"
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    os.chmod(temporary, 0o666 & ~_current_umask())
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``target`` atomically; return ``target``."""
    with atomic_path(target) as temporary:
        write(temporary)
    return Path(target)


def _current_umask() -> int:
    """The process umask (read by setting and restoring it), so outputs get the usual permissions, not 0600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
