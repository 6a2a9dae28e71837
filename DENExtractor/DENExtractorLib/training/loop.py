"""The training loop: seeded shuffles, class-weighted Adam steps, patient-level validation after every epoch,
early stopping on validation loss with the best epoch's weights restored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import DENError
from .data import ReadCase, SliceSet, one_hot
from .evaluation import (
    classification_metrics,
    patient_probabilities,
    weighted_cross_entropy,
)
from .model import TrainableDEN


@dataclass
class LoopResult:
    """Per-epoch metrics, the epoch whose weights were kept, and that epoch's validation slice probabilities."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    val_slice_probabilities: np.ndarray | None = None


def train_loop(
    model: TrainableDEN,
    train: SliceSet,
    val: SliceSet,
    read_case: ReadCase,
    *,
    class_count: int,
    weights: dict[int, float],
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
    on_epoch: Callable[[dict], None] | None = None,
) -> LoopResult:
    """Train ``model.classifier`` for up to ``epochs`` epochs; keep the weights of the lowest validation loss.

    Stops when the validation loss has not improved for ``patience`` epochs. The weights left in the model are
    those of the best epoch. Raises :class:`DENError` if the loss stops being a finite number.
    """
    generator = np.random.RandomState(seed)
    train_labels, val_labels = train.labels, val.labels
    result = LoopResult()
    best_loss, best_weights = np.inf, None
    for epoch in range(1, epochs + 1):
        losses, sizes = [], []
        for positions, data in train.batches(generator.permutation(len(train)), batch_size, read_case):
            targets = one_hot(train_labels[positions], class_count)
            losses.append(float(model.classifier.train_on_batch(data, targets, class_weight=weights)))
            sizes.append(len(positions))
        train_loss = float(np.average(losses, weights=sizes))
        probabilities = predict_slices(model, val, read_case, batch_size)
        val_loss = weighted_cross_entropy(probabilities, val_labels, weights)
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)):  # before any metric of meaningless numbers
            raise DENError("training", f"diverged at epoch {epoch} (the loss is not a finite number): "
                                        "lower --learning-rate; no weights were written")
        patient = classification_metrics(patient_probabilities(probabilities, val.patient, len(val.cases)),
                                         val.patient_labels, class_count)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                  **{f"val_{name}": value for name, value in patient.items() if name != "confusion_matrix"}}
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val_loss < best_loss:
            best_loss, best_weights = val_loss, model.classifier.get_weights()
            result.best_epoch, result.val_slice_probabilities = epoch, probabilities
        elif epoch - result.best_epoch >= patience:
            result.stopped_early = epoch < epochs
            break
    model.classifier.set_weights(best_weights)
    return result


def predict_slices(model: TrainableDEN, slices: SliceSet, read_case: ReadCase, batch_size: int) -> np.ndarray:
    """Class probabilities of every slice, in order, in inference mode."""
    parts = [model.probabilities(data) for _, data in slices.batches(np.arange(len(slices)), batch_size, read_case)]
    return np.concatenate(parts)
