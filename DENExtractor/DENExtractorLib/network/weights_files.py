"""Users' weights files: their identity and their checks, without TensorFlow.

A ``.weights.h5`` file is opened with h5py and every dataset's declared shape is compared with DEN's layer table
before Keras reads a single weight, so a small file cannot decompress into gigabytes; a ``.keras`` archive's members
are bounded by their declared sizes the same way. Loading the values into a network is :mod:`.network`'s job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DENError, describe_error
from ..hashing import file_sha256
from .architecture import LAYERS, weight_specs
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
    """Refuse a weights file that is missing, of another format, whose declared sizes are not DEN's, or whose
    values are not finite; raises :class:`DENError` with one line.

    Sizes are read from metadata (HDF5 dataset shapes, zip member sizes) before any value. A file found good is
    remembered for this process by its state (device, inode, size, modification time): the same unchanged file is
    not read again (a Slicer click, its settings and the panel's check read it once), while a file rewritten in the
    meantime is checked anew.
    """
    if not path.exists():
        raise DENError(path, "no such weights file")
    if not path.is_file():
        raise DENError(path, "the weights path is not a file")
    name = path.name.lower()
    if not name.endswith(WEIGHT_SUFFIXES):
        raise DENError(path, "weights must be a Keras .weights.h5 or .keras file (other formats may run code on load)")
    state = _file_state(path)
    if state in _FOUND_GOOD:
        return
    if name.endswith(".keras"):
        _check_keras_archive(path)
    else:
        _check_h5_shapes(path)
    _FOUND_GOOD[state] = None
    while len(_FOUND_GOOD) > FOUND_GOOD_KEPT:
        del _FOUND_GOOD[next(iter(_FOUND_GOOD))]


FOUND_GOOD_KEPT = 16
"""How many weights files found good one process remembers (the oldest is forgotten first)."""

_FOUND_GOOD: dict[tuple, None] = {}
"""The states (:func:`_file_state`) of the weights files this process has found good, oldest first."""


def _file_state(path: Path) -> tuple:
    """What changes when a file is rewritten: its absolute path, device, inode, size and modification time."""
    status = path.stat()
    return str(path.absolute()), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _check_h5_shapes(path: Path, source: BinaryIO | None = None) -> None:
    """Every dataset of a ``.weights.h5`` (or of the HDF5 file ``source`` inside a ``.keras`` archive) must have
    one of DEN's weight shapes (or be a tiny optimizer scalar), hold numbers stored in the file itself, and the
    model's own arrays (those outside ``optimizer/``) must be exactly DEN's and finite. Shapes and types are
    checked on metadata before any value is read; then the values (at most DEN's 120 MB) are read once."""
    import h5py

    expected = Counter(spec.shape for spec in weight_specs())
    datasets: list[tuple[str, tuple[int, ...]]] = []
    problems: list[str] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            datasets.append((name, tuple(item.shape)))
            problem = _dataset_problem(name, item)
            if problem:
                problems.append(problem)

    try:
        with h5py.File(source if source is not None else path, "r") as handle:
            handle.visititems(visit)
            if _has_external_links(handle):
                problems.append("it links to other HDF5 files (external links)")
            if not problems:
                _check_declared_shapes(datasets, expected, path)
                bad = sum(_non_finite(handle[name]) for name, _ in datasets if not name.startswith("optimizer/"))
                if bad:
                    problems.append(f"{bad} weight values are NaN or infinite: these weights cannot give meaningful "
                                    "features")
    except DENError:
        raise
    except Exception as error:  # h5py raises OSError and others on files that are not HDF5
        raise DENError(path, f"cannot load these weights into DEN: not a readable HDF5 file ({describe_error(error)})") from None
    if problems:
        raise DENError(path, f"cannot load these weights into DEN: {problems[0]}")


def _check_declared_shapes(datasets: list[tuple[str, tuple[int, ...]]], expected: Counter, path: Path) -> None:
    """The datasets' shapes must be DEN's (the model's own arrays exactly), or tiny optimizer values."""
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


def _non_finite(dataset) -> int:
    """How many values of a (shape-checked, floating-point) dataset are NaN or infinite."""
    values = dataset[()]
    return int(np.size(values) - np.count_nonzero(np.isfinite(values)))


def _dataset_problem(name: str, dataset) -> str | None:
    """Why a dataset cannot hold weights DEN reads (its type, or data stored outside the file), or None."""
    small = int(np.prod(dataset.shape)) <= MAX_EXTRA_DATASET_VALUES  # optimizer counters may be integers
    if dataset.dtype.kind not in ("f" + ("iu" if small else "")) or dataset.dtype.itemsize > 8:
        return f"dataset {name!r} holds {dataset.dtype} values, not floating-point numbers"
    if dataset.is_virtual:
        return f"dataset {name!r} is a virtual dataset (its data lie in other files)"
    if dataset.external:
        return f"dataset {name!r} keeps its data in external files"
    return None


def _has_external_links(handle) -> bool:
    """Whether any link in the file points into another file."""
    import h5py

    found: list[str] = []
    stack = [handle]
    while stack and not found:
        group = stack.pop()
        for key in group:
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(key)
            elif isinstance(link, h5py.HardLink) and isinstance(group[key], h5py.Group):
                stack.append(group[key])
    return bool(found)


KERAS_CLASSES = {"Conv2D": "conv", "Activation": "relu", "BatchNormalization": "batchnorm",
                 "MaxPooling2D": "maxpool", "Flatten": "flatten", "Dense": "dense"}
"""The Keras layer classes of DEN's layer table (an ``InputLayer`` may precede them)."""
KERAS_WEIGHTS_MEMBER = "model.weights.h5"
"""The member of a ``.keras`` archive that holds the weights (Keras 3's format)."""
MAX_KERAS_CONFIG_BYTES = 1 << 20
"""Largest ``config.json`` read from a ``.keras`` archive (DEN's is a few kilobytes)."""


def _check_keras_config(archive: zipfile.ZipFile, path: Path) -> None:
    """A ``.keras`` archive's ``config.json`` must describe DEN's layers exactly (classes, filters, kernels,
    strides, padding, units, activations): checked before TensorFlow loads, so no other layer is ever built."""
    try:
        member = archive.getinfo("config.json")
    except KeyError:
        raise DENError(path, "not a .keras model: the archive has no config.json") from None
    if member.file_size > MAX_KERAS_CONFIG_BYTES:
        raise DENError(path, f"its config.json declares {member.file_size} bytes: not DEN's model configuration")
    try:
        config = json.loads(archive.read(member).decode("utf-8"))
        layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
        found = [_layer_entry(layer) for layer in layers]
    except RecursionError:
        raise DENError(path, "its config.json is nested too deeply: not DEN's model configuration") from None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, zipfile.BadZipFile, OSError):
        raise DENError(path, "its config.json is not a Keras model configuration") from None
    expected = [_table_entry(spec) for spec in LAYERS]
    if found != expected:
        pairs = enumerate(zip(found, expected, strict=False))
        first = next((index for index, (a, b) in pairs if a != b), min(len(found), len(expected)))
        shown = found[first] if first < len(found) else "nothing"
        raise DENError(path, f"not DEN's architecture: layer {first + 1} is {shown}, DEN's is "
                             f"{expected[first] if first < len(expected) else 'nothing'}")


def _layer_entry(layer: dict) -> tuple:
    """A Keras layer's configuration in the layer table's terms (unknown classes by name, so they never match)."""
    kind = KERAS_CLASSES.get(layer["class_name"], layer["class_name"])
    settings = layer["config"]
    if kind == "conv":
        return (kind, settings["filters"], tuple(settings["kernel_size"]), tuple(settings["strides"]),
                settings["padding"], settings.get("activation", "linear"))
    if kind == "dense":
        return (kind, settings["units"], settings.get("activation", "linear"))
    if kind == "relu":
        return (kind, settings.get("activation"))
    return (kind,)


def _table_entry(spec: tuple) -> tuple:
    """A row of DEN's layer table as :func:`_layer_entry` describes a Keras layer."""
    kind = spec[0]
    if kind == "conv":
        _, filters, kernel, stride, padding = spec
        return (kind, filters, (kernel, kernel), (stride, stride), padding, "linear")
    if kind == "dense":
        return (kind, spec[1], "linear")
    if kind == "relu":
        return (kind, "relu")
    return (kind,)


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
    with zipfile.ZipFile(path) as archive:
        _check_keras_config(archive, path)
        if KERAS_WEIGHTS_MEMBER not in archive.namelist():
            raise DENError(path, f"not a DEN model: the archive has no {KERAS_WEIGHTS_MEMBER}")
        with archive.open(KERAS_WEIGHTS_MEMBER) as stored, tempfile.TemporaryFile() as weights:
            shutil.copyfileobj(stored, weights, 1 << 20)  # at most the member's checked size; HDF5 seeks freely
            _check_h5_shapes(path, weights)
