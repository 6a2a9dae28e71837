"""The provenance record written next to every feature matrix (``*_den.json``)."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import TYPE_CHECKING

from .architecture import FEATURE_COUNT

if TYPE_CHECKING:
    from .network import LoadedModel
    from .preprocessing import SliceStack
    from .volumes import Volume

PROVENANCE_FORMAT = "den-provenance/1"
PACKAGE_VERSION = "1.0.0"
"""DENExtractor's version, recorded in provenance (keep equal to pyproject.toml's)."""

RECORDED_PACKAGES = ("numpy", "nibabel", "pillow", "tensorflow", "tensorflow-cpu", "keras", "slicerio", "pynrrd")


def build_provenance(
    segmentation: Volume, image: Volume | None, stack: SliceStack, model: LoadedModel, elapsed_seconds: float
) -> dict:
    """Return the JSON-serialisable record of how a feature matrix was computed."""
    return {
        "format": PROVENANCE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"id": model.model_id, "weights_sha256": model.weights_sha256, "weights_source": model.weights_source},
        "input": _describe_volume(segmentation),
        "image": _describe_volume(image) if image is not None else None,
        "preprocessing": stack.parameters,
        "features": {
            "shape": [stack.row_count, FEATURE_COUNT],
            "dtype": "float32",
            "rows": "one row per slice, in slice order",
            "foreground_rows": [int(row) for row in stack.foreground_rows],
            "pooled": "mean then max over foreground rows (8192 values)",
        },
        "software": software_versions(),
        "elapsed_seconds": round(float(elapsed_seconds), 3),
    }


def software_versions() -> dict:
    """Versions of DENExtractor, Python and the packages that affect the numbers (those installed)."""
    versions = {"denextractor": PACKAGE_VERSION, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _describe_volume(volume: Volume) -> dict:
    """Source, checksum, shape, type and affine of an input volume."""
    return {
        "source": volume.source,
        "sha256": volume.sha256,
        "shape": list(volume.shape),
        "dtype": str(volume.data.dtype),
        "affine": [[float(value) for value in row] for row in volume.affine],
    }
