"""The outputs of ``den-train`` in ``MODEL_DIR``, each written atomically, the training record last.

``den_trained.weights.h5`` (the DEN trunk, for ``--weights``), ``den_head.npz`` (the softmax head),
``den_trained.png`` (learning curves and the validation confusion matrix), ``val_predictions.csv`` and
``test_predictions.csv`` (one row per case), ``den_trained_reliability.png`` (calibration on the test cases),
``den_trained_card.md`` (the model card) and ``den_trained.json`` (the training record, which names the others).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..network.trained_record import TRAINING_RECORD_NAME
from ..outputs.atomic import write_atomically
from .classifier import HEAD_FILE

WEIGHTS_NAME = "den_trained.weights.h5"
PICTURE_NAME = "den_trained.png"
PREDICTIONS_NAME = "val_predictions.csv"
NAMES = {"weights": WEIGHTS_NAME, "head": HEAD_FILE, "png": PICTURE_NAME, "predictions": PREDICTIONS_NAME,
         "test_predictions": "test_predictions.csv", "reliability": "den_trained_reliability.png",
         "card": "den_trained_card.md", "record": TRAINING_RECORD_NAME}


def output_paths(model_dir: Path) -> dict[str, Path]:
    """The paths of every output in ``model_dir``, by kind."""
    names = NAMES
    return {kind: model_dir / name for kind, name in names.items()}


def write_weights(trunk: Any, path: Path) -> Path:
    """Save the trunk's weights as a Keras ``.weights.h5`` (loadable by ``den-extract --weights``).

    The layers are first given the names a fresh process gives them: Keras records each layer's name in the file,
    and an automatic name counts every layer the process ever built, so the same weights would otherwise give
    different bytes in a long-lived process (a notebook, Slicer, a test session).
    """
    _name_as_fresh(trunk)
    return write_atomically(path, lambda temporary: trunk.save_weights(str(temporary)))


def _name_as_fresh(model: Any) -> None:
    """Rename the model's layers (conv2d, conv2d_1, ...) and optimizer (adam) by class and order of appearance."""
    seen: dict[str, int] = {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        layer.name = base if base not in seen else f"{base}_{seen[base]}"
        seen[base] = seen.get(base, 0) + 1
    if getattr(model, "optimizer", None) is not None:
        model.optimizer.name = _snake_case(type(model.optimizer).__name__)


def _snake_case(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def write_predictions(path: Path, patients: list[str], labels: list[str], probabilities: np.ndarray,
                      slices: list[int], classes: tuple[str, ...], exact: bool = False) -> Path:
    """One row per case: id, true and predicted class, slices, mean probability of each class (6 decimals, or
    with ``exact`` every digit of the float64, so a reloaded classifier can be compared bit for bit)."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "label", "predicted", "correct", "slices", *(f"p_{name}" for name in classes)])
            for patient, label, row, count in zip(patients, labels, probabilities, slices, strict=True):
                predicted = classes[int(np.argmax(row))]
                writer.writerow([patient, label, predicted, int(predicted == label), count,
                                 *(repr(float(value)) if exact else format(float(value), ".6f") for value in row)])

    return write_atomically(path, write)


def write_record(path: Path, record: dict) -> Path:
    """Write the training record as indented JSON."""
    text = json.dumps(record, indent=2)
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def save_training_png(path: Path, epochs: list[dict], best_epoch: int, confusion: list[list[int]],
                      classes: tuple[str, ...], title: str) -> Path:
    """Learning curves (losses, validation balanced accuracy) beside the best epoch's confusion matrix."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(12, 4.5), dpi=100)
    loss_axes, score_axes, matrix_axes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    numbers = [record["epoch"] for record in epochs]
    loss_axes.plot(numbers, [record["train_loss"] for record in epochs], "o-", label="training (slices)")
    loss_axes.plot(numbers, [record["val_loss"] for record in epochs], "s-", label="validation (slices)")
    score_axes.plot(numbers, [record["val_balanced_accuracy"] for record in epochs], "s-", color="tab:green",
                    label="balanced accuracy")
    if epochs and epochs[0].get("val_roc_auc") is not None:
        score_axes.plot(numbers, [record["val_roc_auc"] for record in epochs], "^-", color="tab:purple",
                        label="ROC AUC")
    score_axes.axhline(1 / len(classes), color="grey", linestyle=":", label="chance")
    for axes, name in ((loss_axes, "class-weighted cross-entropy"), (score_axes, "validation patients")):
        axes.axvline(best_epoch, color="black", linestyle="--", linewidth=0.8, label=f"kept: epoch {best_epoch}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(name)
        axes.legend(fontsize=8)
    loss_axes.set_title("Loss")
    score_axes.set_title("Validation (patient level)")
    score_axes.set_ylim(-0.02, 1.02)
    _draw_confusion(matrix_axes, np.asarray(confusion), classes, best_epoch)
    figure.suptitle(title)
    figure.tight_layout()
    return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))


def _draw_confusion(axes: Any, confusion: np.ndarray, classes: tuple[str, ...], epoch: int) -> None:
    """The confusion matrix with counts written in its cells."""
    axes.imshow(confusion, cmap="Blues", vmin=0, vmax=max(1, int(confusion.max())))
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes)
    axes.set_yticks(ticks, classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Validation patients (epoch {epoch})")
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if count > confusion.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=12)


def no_test_verdict() -> dict:
    """The verdict of a run without test patients: none (validation chose the epoch, so its scores are optimistic)."""
    return {"chance": "no test patients", "baseline_comparison": "no test patients", "better_than_chance": False,
            "better_than_baseline": False,
            "text": "No verdict: there are no test patients (--test-fraction 0 or no 'test' rows in the split column); "
                    "the validation patients chose the epoch, so their scores are optimistic."}


def save_reliability_png(path: Path, curves: dict[str, list[dict]], title: str) -> Path:
    """Reliability diagram: accuracy against mean top-class confidence per bin (marker area ~ cases), diagonal."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 5.5), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for (name, bins), marker in zip(curves.items(), "os^", strict=False):
        confidence = [entry["confidence"] for entry in bins]
        accuracy = [entry["accuracy"] for entry in bins]
        axes.plot(confidence, accuracy, "-", alpha=0.6)
        axes.scatter(confidence, accuracy, s=[40 * entry["patients"] for entry in bins], marker=marker, alpha=0.7,
                     label=f"{name} ({sum(entry['patients'] for entry in bins)} cases)")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("mean confidence (top-class probability) in the bin")
    axes.set_ylabel("accuracy in the bin")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right", markerscale=0.5)
    figure.tight_layout()
    return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))
