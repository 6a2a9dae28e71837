"""The DEN Keras model: building it from the layer table, loading weights, and running it.

TensorFlow is imported here only, and only when a function needs it (importing it costs about two seconds).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .architecture import INPUT_SHAPE, LAYERS, POOL_SIZE, POOL_STRIDE, weight_specs
from .errors import DENError, describe_error
from .volumes import file_sha256
from .weights import MODEL_ID, REFERENCE_WEIGHTS_SHA256, reference_weights

WEIGHT_SUFFIXES = (".weights.h5", ".keras")


@dataclass
class LoadedModel:
    """A built model with the identity of its weights, as recorded in provenance."""

    model: Any
    model_id: str
    weights_sha256: str
    weights_source: str
    _forward: Callable | None = field(default=None, repr=False)
    _windowed: Any = field(default=None, repr=False)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return the (n, 4096) float32 features of an (n, 224, 224, 1) float32 batch, in inference mode."""
        if self._forward is None:
            import tensorflow as tf

            model = self.model
            signature = [tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)]
            self._forward = tf.function(lambda images: model(images, training=False), input_signature=signature)
        return np.asarray(self._forward(batch), dtype=np.float32)

    def windowed(self) -> Any:
        """This model's :class:`windowed.WindowedNetwork` (exact region-of-interest inference), built once."""
        if self._windowed is None:
            from .windowed import WindowedNetwork

            self._windowed = WindowedNetwork(self.model.layers, self.predict)
        return self._windowed


def _import_keras() -> Any:
    """Import Keras quietly (TensorFlow's start-up chatter is not for our users)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def build_architecture() -> Any:
    """Return an uninitialised-but-built, compiled Keras ``Sequential`` following the layer table."""
    keras = _import_keras()
    layers = [keras.Input(shape=INPUT_SHAPE)]
    for spec in LAYERS:
        kind = spec[0]
        if kind == "conv":
            _, filters, kernel, stride, padding = spec
            layers.append(keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding))
        elif kind == "relu":
            layers.append(keras.layers.Activation("relu"))
        elif kind == "batchnorm":
            layers.append(keras.layers.BatchNormalization())
        elif kind == "maxpool":
            layers.append(keras.layers.MaxPooling2D(pool_size=POOL_SIZE, strides=POOL_STRIDE))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "dense":
            layers.append(keras.layers.Dense(spec[1]))
    model = keras.Sequential(layers, name="DEN")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def build_model(weights: str | Path | None = None) -> Any:
    """Return the DEN Keras model with the bundled reference weights (``weights=None``) or a user's weights file.

    ``weights`` may be a Keras ``.weights.h5`` file or a ``.keras`` model of this architecture (loaded in safe
    mode: files that would run code on load are refused). Raises :class:`DENError` for a missing, corrupt or
    mismatched file. Each call builds a new model, which the caller may change freely.
    """
    return _build_loaded_model(weights).model


_MODEL_CACHE: dict[tuple, LoadedModel] = {}


def load_model(weights: str | Path | None = None) -> LoadedModel:
    """Return the model used for extraction with its weights' identity, built once per weights file (and file
    version) per process. Not for changing: :func:`build_model` gives a model of your own."""
    key: tuple = ("bundled",)
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        stat = path.stat() if path.is_file() else None
        key = (str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = _build_loaded_model(weights)
    return _MODEL_CACHE[key]


def _build_loaded_model(weights: str | Path | None) -> LoadedModel:
    """Build a new model with the bundled weights (None) or a user's weights file."""
    return _reference_model() if weights is None else _user_model(Path(weights))


def _reference_model() -> LoadedModel:
    """Build the model with the pinned reference weights."""
    model = build_architecture()
    model.set_weights(reference_weights())
    return LoadedModel(model, MODEL_ID, REFERENCE_WEIGHTS_SHA256, "bundled")


def _user_model(path: Path) -> LoadedModel:
    """Build the model with weights from a user's ``.weights.h5`` or ``.keras`` file."""
    if not path.is_file():
        raise DENError(path, "no such weights file")
    name = path.name.lower()
    if not name.endswith(WEIGHT_SUFFIXES):
        raise DENError(path, "weights must be a Keras .weights.h5 or .keras file (other formats may run code on load)")
    model = build_architecture()
    if name.endswith(".keras"):
        model.set_weights(_weights_from_keras_file(path))
    else:
        try:
            model.load_weights(str(path))
        except Exception as error:  # h5py/Keras raise many kinds on corrupt or mismatched files
            raise DENError(path, f"cannot load these weights into DEN ({describe_error(error)})") from None
    return LoadedModel(model, f"user:{path.name}", file_sha256(path), str(path))


def _weights_from_keras_file(path: Path) -> list[np.ndarray]:
    """Load a ``.keras`` model in safe mode and return its weights if its layers are DEN's."""
    keras = _import_keras()
    if not zipfile.is_zipfile(path):
        raise DENError(path, "not a .keras archive (corrupt or another format)")
    try:
        loaded = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as error:  # safe mode refuses Lambda layers and other code with a ValueError
        raise DENError(path, f"cannot load this model safely ({describe_error(error)})") from None
    arrays = loaded.get_weights()
    expected = [spec.shape for spec in weight_specs()]
    found = [tuple(array.shape) for array in arrays]
    if found != expected:
        raise DENError(path, f"not a DEN model: its weights have shapes {found[:3]}..., expected {expected[:3]}...")
    return arrays
