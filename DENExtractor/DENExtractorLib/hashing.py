"""Content hashes of input and output files (sha256), the identity that provenance and resume rely on."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(*paths: str | Path) -> str:
    """Return the hex sha256 of the bytes of one file, or of several files read one after another."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
