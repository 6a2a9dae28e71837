"""The training loop on a small real Keras classifier: early stopping on validation loss keeps the best epoch's
weights, and the same seed gives the same run."""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib.training.cache import CachedCase, read_rows
from DENExtractorLib.training.data import class_weights, slice_set
from DENExtractorLib.training.evaluation import weighted_cross_entropy
from DENExtractorLib.training.loop import predict_slices, train_loop
from DENExtractorLib.training.model import TrainableDEN, make_deterministic


def noise_patients(folder, prefix: str, count: int, seed: int) -> list[CachedCase]:
    """Patients whose slices are random vectors: labels alternate, so nothing generalises and validation loss rises."""
    generator = np.random.RandomState(seed)
    cases = []
    for index in range(count):
        path = folder / f"{prefix}{index}.npy"
        np.save(path, generator.normal(size=(6, 16)).astype(np.float32))
        cases.append(CachedCase(f"{prefix}{index}", index % 2, path, 1.0, 6))
    return cases


def small_classifier(seed: int) -> TrainableDEN:
    """A real Keras classifier (16 -> 64 -> 2 softmax) compiled like DEN's: Adam and categorical cross-entropy."""
    from DENExtractorLib.network.model import import_keras

    keras = import_keras()
    make_deterministic(seed)
    initialiser = keras.initializers.GlorotUniform(seed=seed)
    classifier = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, "relu", kernel_initializer=initialiser),
                                   keras.layers.Dense(2, "softmax", kernel_initializer=initialiser)])
    classifier.compile(optimizer=keras.optimizers.Adam(0.02), loss="categorical_crossentropy")
    return TrainableDEN(trunk=None, classifier=classifier, feature_model=None, frozen=None, base=None)


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Training and validation slice sets of random patients."""
    folder = tmp_path_factory.mktemp("noise")
    return slice_set(noise_patients(folder, "t", 6, seed=1)), slice_set(noise_patients(folder, "v", 4, seed=2))


def run(noise, patience: int):
    """Train the small classifier on the noise; return (model, loop result, class weights)."""
    train, val = noise
    model = small_classifier(seed=0)
    weights = class_weights(train.labels, 2)
    result = train_loop(model, train, val, lambda case, rows: read_rows(case.inputs, rows), class_count=2,
                        weights=weights, epochs=30, batch_size=8, patience=patience, seed=0)
    return model, result, weights


@pytest.mark.slow
def test_early_stopping_restores_the_weights_of_the_lowest_validation_loss(noise):
    model, result, weights = run(noise, patience=3)
    losses = [epoch["val_loss"] for epoch in result.epochs]
    assert result.stopped_early and len(losses) == result.best_epoch + 3 < 30
    assert result.best_epoch == 1 + int(np.argmin(losses)) and losses[-1] > min(losses)
    val = noise[1]
    kept = predict_slices(model, val, lambda case, rows: read_rows(case.inputs, rows), 8)
    assert np.array_equal(kept, result.val_slice_probabilities)
    assert weighted_cross_entropy(kept, val.labels, weights) == pytest.approx(min(losses), rel=1e-6)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_run(noise):
    first, second = run(noise, patience=2), run(noise, patience=2)
    assert first[1].epochs == second[1].epochs
    assert all(np.array_equal(a, b) for a, b in zip(first[0].classifier.get_weights(), second[0].classifier.get_weights(), strict=True))


def test_a_diverging_loss_stops_training_with_one_line(tmp_path, noise):
    from DENExtractorLib.errors import DENError

    poisoned = noise_patients(tmp_path, "bad", 2, seed=3)
    rows = read_rows(poisoned[0].inputs, np.arange(6))
    rows[2, 5] = np.inf
    np.save(poisoned[0].inputs, rows)
    model = small_classifier(seed=0)
    with pytest.raises(DENError, match="training: diverged at epoch 1 .* lower --learning-rate"):
        train_loop(model, slice_set(poisoned), noise[1], lambda case, rows: read_rows(case.inputs, rows), class_count=2,
                   weights={0: 1.0, 1: 1.0}, epochs=3, batch_size=4, patience=2, seed=0)


@pytest.mark.slow
def test_weights_files_do_not_depend_on_what_the_process_built_before(tmp_path):
    """Keras names layers by a process-wide counter and records the names: the same weights must give the same bytes."""
    from DENExtractorLib.hashing import file_sha256
    from DENExtractorLib.network.model import build_architecture
    from DENExtractorLib.training.report import write_weights

    first, second = build_architecture(), build_architecture()  # the second's layers are conv2d_5... by default
    second.set_weights(first.get_weights())

    paths = [write_weights(model, tmp_path / f"{index}.weights.h5") for index, model in enumerate((first, second))]

    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    assert file_sha256(paths[0]) == file_sha256(paths[1])
