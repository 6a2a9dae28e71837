"""The DEN Keras model: building it from the layer table, loading weights, and running it.

TensorFlow is imported here only, and only when a function needs it (importing it costs about two seconds).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from .architecture import INPUT_SHAPE, LAYERS, POOL_SIZE, POOL_STRIDE, weight_specs
from .bundled import reference_weights
from .runtime import apply_tensorflow_setup
from .weights_files import WeightsIdentity, check_weights_file, weights_identity


@dataclass
class LoadedModel:
    """A built model with the identity of its weights, as recorded in provenance."""

    model: Any
    identity: WeightsIdentity
    _forward: Callable | None = field(default=None, repr=False)
    _windowed: Any = field(default=None, repr=False)

    @property
    def model_id(self) -> str:
        """The weights' model id (``den-ref-v1`` or ``user:<file name>``)."""
        return self.identity.model_id

    @property
    def weights_sha256(self) -> str:
        """The weights' sha256 (pinned for the bundled weights, the file's bytes for a user's)."""
        return self.identity.sha256

    @property
    def weights_source(self) -> str:
        """Where the weights came from: "bundled" or the file's path."""
        return self.identity.source

    @cached_property
    def provenance_entry(self) -> dict:
        """The ``model`` entry of provenance, worked out once per model (for trained weights it reads and hashes
        the training record beside the file: once per run, not once per case)."""
        from .trained_record import model_provenance

        return model_provenance(self.model_id, self.weights_sha256, self.weights_source)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return the (n, 4096) float32 features of an (n, 224, 224, 1) float32 batch, in inference mode."""
        if self._forward is None:
            import tensorflow as tf

            model = self.model
            signature = [tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)]
            self._forward = tf.function(lambda images: model(images, training=False), input_signature=signature)
        return np.asarray(self._forward(batch), dtype=np.float32)

    def windowed(self) -> Any:
        """This model's :class:`windowed.WindowedNetwork` (exact region-of-interest inference), built once; its
        set-up probe's answer is kept per platform in the probe cache."""
        if self._windowed is None:
            from .windowed import WindowedNetwork

            self._windowed = WindowedNetwork(self.model.layers, self.predict, probe_key=self.weights_sha256)
        return self._windowed


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send the process's stderr (file descriptor 2) to the null device for the duration of the block.

    TensorFlow's C++ libraries print start-up notices (absl, oneDNN, and a cuInit failure where a CUDA build finds no
    GPU) straight to descriptor 2 while they load, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; they are not for users.
    """
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


UNNEEDED_AT_IMPORT = ("sklearn", "scipy", "pandas", "matplotlib")
"""Packages that TensorFlow and Keras import, where installed and inside ``try: ... except ImportError``, only for
parts DEN never uses (Keras' scikit-learn wrappers, its pandas data adapter and image-gallery plots, TensorFlow's
legacy Keras' SciPy sparse check): about 2 s of import together. They are hidden while TensorFlow loads, and
importable again right after (``den-train`` imports scikit-learn itself); only those helpers then work as if the
package were absent. A TensorFlow that needs one of them outright is imported again without hiding anything."""


@contextmanager
def _unneeded_modules_hidden() -> Iterator[None]:
    """Make :data:`UNNEEDED_AT_IMPORT` (those not imported yet) unimportable for the duration of the block."""
    hidden = [name for name in UNNEEDED_AT_IMPORT if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # None in sys.modules makes an import raise ImportError
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def import_keras() -> Any:
    """Import TensorFlow and Keras without their start-up chatter and without packages they do not need for DEN
    (:data:`UNNEEDED_AT_IMPORT`); return the ``keras`` module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        try:
            with _unneeded_modules_hidden():
                import keras
        except ImportError as error:
            if (error.name or "").split(".")[0] not in UNNEEDED_AT_IMPORT:
                raise
            import keras
        import tensorflow  # loaded here so that its notices are silenced

        apply_tensorflow_setup(tensorflow)  # finds the devices: without a GPU, CUDA builds log a cuInit failure
    return keras


def build_architecture(*, initialise: bool = True) -> Any:
    """Return a built, compiled Keras ``Sequential`` following the layer table, with Keras' default initial weights.

    ``initialise=False`` leaves the kernels zero (about 0.3 s faster), for a caller that sets every weight next.
    """
    keras = import_keras()
    kernels = "glorot_uniform" if initialise else "zeros"
    layers = [keras.Input(shape=INPUT_SHAPE)]
    for spec in LAYERS:
        kind = spec[0]
        if kind == "conv":
            _, filters, kernel, stride, padding = spec
            layers.append(
                keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, kernel_initializer=kernels)
            )
        elif kind == "relu":
            layers.append(keras.layers.Activation("relu"))
        elif kind == "batchnorm":
            layers.append(keras.layers.BatchNormalization())
        elif kind == "maxpool":
            layers.append(keras.layers.MaxPooling2D(pool_size=POOL_SIZE, strides=POOL_STRIDE))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "dense":
            layers.append(keras.layers.Dense(spec[1], kernel_initializer=kernels))
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


def load_model(weights: str | Path | None = None, *, identity: WeightsIdentity | None = None) -> LoadedModel:
    """Build the model used for extraction, with its weights' identity. Each call builds a new model: hold it (a
    :class:`~DENExtractorLib.extraction.extractor.DENExtractor` does) rather than calling this per case.

    ``identity``: the weights' identity when the caller has already checked and hashed the file (an
    :class:`~DENExtractorLib.settings.ExtractionSettings` has), so neither is done again.
    """
    return _build_loaded_model(weights, identity)


def _build_loaded_model(weights: str | Path | None, identity: WeightsIdentity | None = None) -> LoadedModel:
    """Build a new model with the bundled weights (None) or a user's weights file, refusing non-finite weights."""
    path = None if weights is None else Path(weights).expanduser().absolute()
    if path is None:
        model = build_architecture(initialise=False)
        model.set_weights(reference_weights())
    else:
        if identity is None:
            check_weights_file(path)
        model = _user_model(path)
        _refuse_non_finite(model.get_weights(), path)
    return LoadedModel(model, identity if identity is not None else weights_identity(path))


def _user_model(path: Path) -> Any:
    """Build the model with weights from a checked ``.weights.h5`` or ``.keras`` file (every weight is set)."""
    model = build_architecture(initialise=False)
    if path.name.lower().endswith(".keras"):
        model.set_weights(_weights_from_keras_file(path))
        return model
    try:
        model.load_weights(str(path))
    except Exception as error:  # h5py/Keras raise many kinds on corrupt or mismatched files
        raise DENError(path, f"cannot load these weights into DEN ({describe_error(error)})") from None
    return model


def _refuse_non_finite(arrays: list[np.ndarray], path: Path) -> None:
    """Weights with NaN or infinite values give meaningless features (often all 0.0): refuse them."""
    bad = sum(int(np.size(array) - np.count_nonzero(np.isfinite(array))) for array in arrays)
    if bad:
        raise DENError(path, f"{bad} weight values are NaN or infinite: these weights cannot give meaningful features")


def _weights_from_keras_file(path: Path) -> list[np.ndarray]:
    """Load a ``.keras`` model in safe mode and return its weights if its layers are DEN's."""
    keras = import_keras()
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
