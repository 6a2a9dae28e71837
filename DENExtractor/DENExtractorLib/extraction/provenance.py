"""The provenance record written next to every feature matrix (``*_den.json``)."""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..network.architecture import FEATURE_COUNT
from ..network.environment import numeric_environment
from ..settings import RECORDED_SETTINGS

if TYPE_CHECKING:
    from ..network.model import LoadedModel
    from ..volume import Volume
    from .preprocessing import SliceStack

PROVENANCE_FORMAT = "den-provenance/2"
"""Version 2 keeps each setting once, in ``settings`` (version 1 repeated mode, plane, labels and label scale in
``preprocessing``); :mod:`.record` reads both."""

# For each RAS axis (+x = patient right, +y = anterior, +z = superior): the plane of a slice perpendicular to it,
# and the patient's side at its low and high ends.
ANATOMY_OF_RAS_AXIS = (("sagittal", "left", "right"), ("coronal", "posterior", "anterior"),
                       ("axial", "inferior", "superior"))
OBLIQUE_COSINE = 0.99  # an axis more than about 8 degrees off its nearest RAS axis is called oblique

RECORDED_PACKAGES = ("numpy", "nibabel", "pillow", "tensorflow", "tensorflow-cpu", "keras", "slicerio", "pynrrd")


def build_provenance(
    segmentation: Volume, image: Volume | None, stack: SliceStack, model: LoadedModel, elapsed_seconds: float,
    settings: dict | None = None,
) -> dict:
    """Return the JSON-serialisable record of how a feature matrix was computed; ``settings``: the effective
    settings and where each came from (:meth:`ExtractionSettings.provenance_record`), the one place the record
    keeps them (``preprocessing`` holds the rest of what preprocessing did)."""
    return {
        "format": PROVENANCE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "model": model.provenance_entry,
        "input": _describe_volume(segmentation),
        "image": _describe_volume(image) if image is not None else None,
        "preprocessing": _with_slice_axis_anatomy(
            {name: value for name, value in stack.parameters.items() if name not in RECORDED_SETTINGS},
            stack.parameters["mode"], segmentation.affine),
        "features": {
            "shape": [stack.row_count, FEATURE_COUNT],
            "dtype": "float32",
            "rows": "one row per slice, in slice order",
            "foreground_rows": [int(row) for row in stack.foreground_rows],
            "pooled": "mean then max over foreground rows (8192 values)",
        },
        "software": software_versions(),
        "compute": numeric_environment(),
        "command_line": shlex.join(sys.argv),
        "elapsed_seconds": round(float(elapsed_seconds), 3),
    }


def stored_axis_anatomy(affine: np.ndarray, axis: int = 0) -> str:
    """Name a stored voxel axis anatomically from the voxel-to-RAS ``affine``: the plane its slices lie in and the
    direction in which its index grows, e.g. ``"sagittal, right to left"`` for BraTS' ``diag(-1, -1, 1)``."""
    direction = np.asarray(affine, dtype=float)[:3, axis]
    nearest = int(np.argmax(np.abs(direction)))
    plane, low, high = ANATOMY_OF_RAS_AXIS[nearest]
    start, end = (low, high) if direction[nearest] > 0 else (high, low)
    oblique = abs(direction[nearest]) < OBLIQUE_COSINE * float(np.linalg.norm(direction))
    return f"{'oblique, nearest ' if oblique else ''}{plane}, {start} to {end}"


def _with_slice_axis_anatomy(parameters: dict, mode: str, affine: np.ndarray) -> dict:
    """In reference mode (slices along the first stored axis, as stored) add what that axis is anatomically."""
    if mode != "reference":
        return parameters
    return {**parameters, "slice_axis_anatomy": stored_axis_anatomy(affine, parameters.get("slice_axis", 0))}


def software_versions() -> dict:
    """Versions of DENExtractor, Python and the packages that affect the numbers (those installed)."""
    versions = {"denextractor": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _describe_volume(volume: Volume) -> dict:
    """Source, checksum, shape, type and affine of an input volume (and its named segments, where it has them)."""
    described: dict[str, Any] = {
        "source": volume.source,
        "sha256": volume.sha256,
        "shape": list(volume.shape),
        "dtype": str(volume.data.dtype),
        "affine": [[float(value) for value in row] for row in volume.affine],
    }
    if volume.segments is not None:
        described["segments"] = [dict(segment) for segment in volume.segments]
    if volume.grid is not None:
        described["grid"] = dict(volume.grid)
    return described
