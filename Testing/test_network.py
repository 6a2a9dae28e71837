"""The network follows the published layer table, and its bundled weights are the pinned, seeded ones."""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib import (
    MODEL_ID,
    PARAMETER_COUNT,
    REFERENCE_WEIGHTS_SHA256,
    DENError,
    build_model,
)
from DENExtractorLib.network.architecture import weight_specs
from DENExtractorLib.network.bundled import (
    REFERENCE_SEED,
    reference_weights,
    weights_sha256,
)

EXPECTED_LAYERS = [
    ("Conv2D", (54, 54, 96)),
    ("Activation", (54, 54, 96)),
    ("BatchNormalization", (54, 54, 96)),
    ("MaxPooling2D", (26, 26, 96)),
    ("Conv2D", (26, 26, 256)),
    ("Activation", (26, 26, 256)),
    ("BatchNormalization", (26, 26, 256)),
    ("MaxPooling2D", (12, 12, 256)),
    ("Conv2D", (12, 12, 384)),
    ("Activation", (12, 12, 384)),
    ("Conv2D", (12, 12, 384)),
    ("Activation", (12, 12, 384)),
    ("Conv2D", (12, 12, 256)),
    ("Activation", (12, 12, 256)),
    ("MaxPooling2D", (5, 5, 256)),
    ("Flatten", (6400,)),
    ("Dense", (4096,)),
    ("Activation", (4096,)),
]


@pytest.fixture(scope="module")
def model():
    """The bundled DEN model."""
    return build_model()


def test_layers_follow_the_published_table(model):
    found = [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in model.layers]
    assert found == EXPECTED_LAYERS
    assert tuple(model.input_shape) == (None, 224, 224, 1)


def test_layer_settings_are_the_published_ones(model):
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    settings = [(c.filters, c.kernel_size, c.strides, c.padding) for c in convolutions]
    assert settings == [
        (96, (9, 9), (4, 4), "valid"),
        (256, (7, 7), (1, 1), "same"),
        (384, (3, 3), (1, 1), "same"),
        (384, (3, 3), (1, 1), "same"),
        (256, (3, 3), (1, 1), "same"),
    ]
    activations = [layer.get_config()["activation"] for layer in model.layers if type(layer).__name__ == "Activation"]
    assert activations == ["relu"] * 6
    assert all(layer.epsilon == 1e-3 for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    assert all((layer.pool_size, layer.strides) == ((3, 3), (2, 2)) for layer in model.layers if "Pooling" in type(layer).__name__)


def test_parameter_count_and_compilation(model):
    assert model.count_params() == PARAMETER_COUNT == 30_529_856
    assert type(model.optimizer).__name__ == "Adam"
    assert model.loss == "categorical_crossentropy"


def test_get_weights_lists_kernels_biases_and_batchnorm_in_table_order(model):
    specs = weight_specs()
    assert [tuple(w.shape) for w in model.get_weights()] == [spec.shape for spec in specs]
    assert [spec.role for spec in specs[:8]] == ["kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "kernel", "bias"]


def test_bundled_weights_are_the_pinned_reference(model):
    assert MODEL_ID == "den-ref-v1"
    assert weights_sha256(model.get_weights()) == REFERENCE_WEIGHTS_SHA256


def test_reference_weights_follow_keras_default_initialisers():
    arrays = reference_weights()
    specs = weight_specs()
    for spec, array in zip(specs, arrays, strict=True):
        if spec.role == "kernel":
            limit = np.sqrt(6.0 / (spec.fan_in + spec.fan_out))
            assert np.abs(array).max() <= np.float32(limit) * (1 + 1e-6)
            assert abs(array.std() - limit / np.sqrt(3)) < 0.05 * limit
        elif spec.role in ("gamma", "moving_variance"):
            assert np.all(array == 1)
        else:
            assert np.all(array == 0)


def test_reference_weights_depend_on_the_documented_seed():
    first_kernel = np.random.RandomState(REFERENCE_SEED).uniform(-1, 1, size=5)
    limit = np.sqrt(6.0 / (81 + 81 * 96))
    assert np.allclose(reference_weights()[0].ravel()[:5], (first_kernel * limit).astype(np.float32))


@pytest.mark.slow
def test_user_weights_h5_are_used(tmp_path, model, small_case):
    from DENExtractorLib import extract_file

    arrays = [array * 0.5 if array.ndim > 1 else array for array in model.get_weights()]
    other = build_model()
    other.set_weights(arrays)
    path = tmp_path / "halved.weights.h5"
    other.save_weights(str(path))
    reference = extract_file(small_case)
    mine = extract_file(small_case, weights=path)
    assert mine.provenance["model"]["weights_source"] == str(path)
    assert mine.provenance["model"]["weights_sha256"] != REFERENCE_WEIGHTS_SHA256
    # with zero biases, ReLU, max pooling and BatchNorm at its initial statistics are all positively homogeneous:
    # halving the six kernels divides every feature by 2**6
    assert np.allclose(mine.features, reference.features / 64, rtol=1e-4, atol=1e-9)
    assert weights_sha256(build_model(weights=path).get_weights()) == weights_sha256(arrays)


@pytest.mark.slow
def test_user_keras_model_is_loaded_in_safe_mode(tmp_path, model, small_case):
    from DENExtractorLib import extract_file

    path = tmp_path / "den.keras"
    model.save(str(path))
    assert np.array_equal(extract_file(small_case, weights=path).features, extract_file(small_case).features)


def test_keras_file_with_code_is_refused(tmp_path):
    import keras

    unsafe = keras.Sequential([keras.Input((224, 224, 1)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "unsafe.keras"
    unsafe.save(str(path))
    with pytest.raises(DENError, match="unsafe.keras: not DEN.s architecture"):
        build_model(weights=path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    import keras

    other = keras.Sequential([keras.Input((224, 224, 1)), keras.layers.Conv2D(8, 3)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(str(path))
    with pytest.raises(DENError, match="other.weights.h5: cannot load these weights into DEN"):
        build_model(weights=path)


@pytest.mark.parametrize("name", ["corrupt.weights.h5", "corrupt.keras", "model.pkl"])
def test_unreadable_weights_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04 this is not a weights file" * 10)
    with pytest.raises(DENError, match=name):
        build_model(weights=path)
