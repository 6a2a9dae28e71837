"""The memory bound every reader applies to what a header declares, before reading any voxel."""

from __future__ import annotations

import os

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
