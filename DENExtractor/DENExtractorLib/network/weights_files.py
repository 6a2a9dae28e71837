"""Users' weights files: their identity and their checks, without TensorFlow.

A ``.weights.h5`` file is opened with h5py and every dataset's declared shape is compared with DEN's layer table
before Keras reads a single weight, so a small file cannot decompress into gigabytes; a ``.keras`` archive's members
are bounded by their declared sizes the same way. Loading the values into a network is :mod:`.network`'s job.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..hashing import file_sha256
from .architecture import weight_specs
from .bundled import MODEL_ID, REFERENCE_WEIGHTS_SHA256

WEIGHT_SUFFIXES = (".weights.h5", ".keras")
KERAS_MEMBER_LIMIT_BYTES = 2 * sum(int(np.prod(spec.shape)) * 4 for spec in weight_specs()) + (16 << 20)
"""Largest member accepted in a ``.keras`` archive: twice DEN's float32 weights plus 16 MiB for the configuration."""


MAX_EXTRA_DATASET_VALUES = 1024
"""Largest dataset in a weights file whose shape is not one of DEN's (optimizer counters and rates are scalars)."""


@dataclass(frozen=True)
class WeightsIdentity:
    """What provenance records about weights: their model id, sha256 and where they came from."""

    model_id: str
    sha256: str
    source: str


def weights_identity(path: Path | None) -> WeightsIdentity:
    """The identity of the bundled weights (None) or of a weights file (its bytes' sha256), without building a model."""
    if path is None:
        return WeightsIdentity(MODEL_ID, REFERENCE_WEIGHTS_SHA256, "bundled")
    return WeightsIdentity(f"user:{path.name}", file_sha256(path), str(path))


def check_weights_file(path: Path) -> None:
    """Refuse a weights file that is missing, of another format, or whose declared sizes are not DEN's.

    Reads only metadata (HDF5 dataset shapes, zip member sizes); raises :class:`DENError` with one line.
    """
    if not path.exists():
        raise DENError(path, "no such weights file")
    if not path.is_file():
        raise DENError(path, "the weights path is not a file")
    name = path.name.lower()
    if not name.endswith(WEIGHT_SUFFIXES):
        raise DENError(path, "weights must be a Keras .weights.h5 or .keras file (other formats may run code on load)")
    if name.endswith(".keras"):
        _check_keras_archive(path)
    else:
        _check_h5_shapes(path)


def _check_h5_shapes(path: Path) -> None:
    """Every dataset of a ``.weights.h5`` must have one of DEN's weight shapes (or be a tiny optimizer scalar), and
    the model's own arrays (those outside ``optimizer/``) must be exactly DEN's: checked on metadata only."""
    import h5py

    expected = Counter(spec.shape for spec in weight_specs())
    datasets: list[tuple[str, tuple[int, ...]]] = []
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, item: datasets.append((name, tuple(item.shape))) if isinstance(item, h5py.Dataset) else None)
    except Exception as error:  # h5py raises OSError and others on files that are not HDF5
        raise DENError(path, f"cannot load these weights into DEN: not a readable HDF5 file ({describe_error(error)})") from None
    for name, shape in datasets:
        if shape not in expected and int(np.prod(shape)) > MAX_EXTRA_DATASET_VALUES:
            raise DENError(path, f"cannot load these weights into DEN: dataset {name!r} has shape {shape}, which DEN's layers do not have")
    found = Counter(shape for name, shape in datasets if not name.startswith("optimizer/"))
    if found != expected:
        raise DENError(
            path,
            f"cannot load these weights into DEN: its {sum(found.values())} weight arrays do not match DEN's "
            f"{sum(expected.values())} (another architecture?)",
        )


def _check_keras_archive(path: Path) -> None:
    """A ``.keras`` file must be a zip archive whose members declare sizes DEN's weights can have."""
    if not zipfile.is_zipfile(path):
        raise DENError(path, "not a .keras archive (corrupt or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise DENError(path, f"not a readable .keras archive ({describe_error(error)})") from None
    for member in members:
        if member.file_size > KERAS_MEMBER_LIMIT_BYTES:
            raise DENError(
                path,
                f"archive member {member.filename!r} declares {member.file_size / 2**20:.0f} MiB, more than DEN's "
                f"weights can need ({KERAS_MEMBER_LIMIT_BYTES / 2**20:.0f} MiB): refused",
            )
