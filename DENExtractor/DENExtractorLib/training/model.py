"""DEN as extracted plus a softmax head, compiled with Adam and categorical cross-entropy, ready to train.

The trunk is :func:`DENExtractorLib.network.build_architecture`, the very layer table extraction uses, loaded with
the bundled weights or the user's. In ``dense`` training the convolutions are frozen (BatchNorm in inference
mode), so their output is computed once per slice and the classifier trained is Dense 4096, ReLU, head on it; in
``all`` training the classifier is the whole trunk plus the head. Either way the layers are shared with the
trunk, whose weights are what is saved.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..network.architecture import INPUT_SHAPE
from ..network.bundled import weights_sha256
from ..network.model import import_keras, load_model
from ..network.trained_record import trained_model_link

HEAD_NAME = "den_head"


@dataclass
class BaseWeights:
    """The identity of the weights training starts from: model id (a trained model's own id when its record lies
    beside the file), ``sha256`` of the float32 arrays (as :func:`~DENExtractorLib.network.bundled.weights_sha256`), the
    source ("bundled" or the path) and, for a file, the sha256 of its bytes."""

    model_id: str
    sha256: str
    source: str
    file_sha256: str | None


@dataclass
class TrainableDEN:
    """The trunk (DEN exactly as extracted), the classifier trained, and the parts used for features."""

    trunk: Any
    classifier: Any
    feature_model: Any
    frozen: Any | None
    base: BaseWeights
    _inference: dict[str, Callable] = field(default_factory=dict, repr=False)

    def classifier_input(self, network_inputs: np.ndarray) -> np.ndarray:
        """What the classifier takes for a batch of network inputs: the inputs, or the frozen trunk's output."""
        if self.frozen is None:
            return network_inputs
        return self._run("frozen", network_inputs)

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """The classifier's class probabilities for a batch of its inputs, in inference mode."""
        return self._run("classifier", data)

    def features(self, data: np.ndarray) -> np.ndarray:
        """The (n, 4096) DEN features for a batch of classifier inputs, with the current trunk weights."""
        return self._run("feature_model", data)

    def _run(self, part: str, data: np.ndarray) -> np.ndarray:
        """Run one part in inference mode through a ``tf.function`` traced once for any batch size."""
        if part not in self._inference:
            import tensorflow as tf

            model = getattr(self, part)
            signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]
            self._inference[part] = tf.function(lambda batch: model(batch, training=False), input_signature=signature)
        return np.asarray(self._inference[part](data), dtype=np.float32)

    def frozen_key(self) -> str:
        """sha256 naming what the frozen trunk's outputs depend on: base weights, TensorFlow, Keras, oneDNN switch."""
        import keras
        import tensorflow as tf

        parts = [self.base.sha256, tf.__version__, keras.__version__, os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def trunk_weights(self) -> list[np.ndarray]:
        """The trunk's weights in ``model.get_weights()`` order (what ``--weights`` loads)."""
        return self.trunk.get_weights()


def make_deterministic(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and turn on TensorFlow's op determinism (bit-identical reruns)."""
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_trainable(weights: Path | None, class_count: int, train_layers: str, learning_rate: float, seed: int) -> TrainableDEN:
    """Build DEN with its base weights, add a ``Dense(class_count, softmax)`` head and compile the classifier."""
    keras = import_keras()
    trunk, base = _trunk_with_base_weights(weights)
    head = keras.layers.Dense(class_count, activation="softmax", name=HEAD_NAME,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed))
    flatten = next(index for index, layer in enumerate(trunk.layers) if isinstance(layer, keras.layers.Flatten))
    if train_layers == "dense":
        frozen_layers, trained_layers = trunk.layers[: flatten + 1], trunk.layers[flatten + 1 :]
        for layer in frozen_layers:
            layer.trainable = False
        frozen = keras.Sequential([keras.Input(shape=INPUT_SHAPE), *frozen_layers], name="DEN_frozen")
        flat_shape = (int(frozen.output_shape[-1]),)
        feature_model = keras.Sequential([keras.Input(shape=flat_shape), *trained_layers], name="DEN_dense")
        classifier = keras.Sequential([keras.Input(shape=flat_shape), *trained_layers, head], name="DEN_classifier")
    else:
        frozen, feature_model = None, trunk
        classifier = keras.Sequential([keras.Input(shape=INPUT_SHAPE), *trunk.layers, head], name="DEN_classifier")
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="categorical_crossentropy")
    return TrainableDEN(trunk, classifier, feature_model, frozen, base)


def _trunk_with_base_weights(weights: Path | None) -> tuple[Any, BaseWeights]:
    """A new DEN trunk with the bundled weights (None) or the user's file, and their identity."""
    loaded = load_model(weights)
    trunk, identity = loaded.model, loaded.identity
    if weights is None:
        return trunk, BaseWeights(identity.model_id, identity.sha256, identity.source, None)
    link = trained_model_link(weights, identity.sha256)
    model_id = link["model_id"] if link else identity.model_id
    return trunk, BaseWeights(model_id, weights_sha256(trunk.get_weights()), identity.source, identity.sha256)
