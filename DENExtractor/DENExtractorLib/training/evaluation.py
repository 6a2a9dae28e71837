"""Patient-level evaluation: slice probabilities averaged per patient, then accuracy, balanced accuracy, ROC AUC
(one-vs-rest macro average for more than two classes), the confusion matrix and calibration (Brier score, expected
calibration error, reliability bins)."""

from __future__ import annotations

import numpy as np


def patient_probabilities(slice_probabilities: np.ndarray, patient_of_slice: np.ndarray, patients: int) -> np.ndarray:
    """(patients, classes): the mean of each patient's slice probabilities."""
    sums = np.zeros((patients, slice_probabilities.shape[1]), dtype=np.float64)
    np.add.at(sums, patient_of_slice, slice_probabilities)
    counts = np.bincount(patient_of_slice, minlength=patients)[:, np.newaxis]
    return sums / np.maximum(counts, 1)


def weighted_cross_entropy(probabilities: np.ndarray, labels: np.ndarray, weights: dict[int, float]) -> float:
    """Class-weighted mean categorical cross-entropy of slice probabilities (the loss training minimises)."""
    picked = np.clip(probabilities[np.arange(len(labels)), labels].astype(np.float64), 1e-7, 1.0)
    slice_weights = np.asarray([weights.get(int(label), 0.0) for label in labels])
    return float(np.sum(-np.log(picked) * slice_weights) / np.sum(slice_weights))


CALIBRATION_BINS = 10
"""Equal-width bins of the top-class confidence for the expected calibration error and the reliability diagram."""


def classification_metrics(probabilities: np.ndarray, truth: np.ndarray, class_count: int) -> dict:
    """Accuracy, balanced accuracy, ROC AUC, confusion matrix (rows: true class), Brier score and ECE.

    ROC AUC: class 1 against class 0 for two classes, else the mean one-vs-rest AUC over the classes present
    (None when fewer than two classes are present). Brier: mean over patients of the squared distance between the
    probabilities and the one-hot truth, summed over classes (0 best; predicting 1/K everywhere scores 1 - 1/K).
    """
    predicted = np.argmax(probabilities, axis=1)
    confusion = np.zeros((class_count, class_count), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    return {
        "patients": len(truth),
        "accuracy": float(np.mean(predicted == truth)),
        "balanced_accuracy": balanced_accuracy(probabilities, truth),
        "roc_auc": multiclass_auc(probabilities, truth),
        "confusion_matrix": confusion.tolist(),
        "brier": brier_score(probabilities, truth),
        "ece": expected_calibration_error(probabilities, truth),
    }


def balanced_accuracy(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall of the argmax prediction over the classes present in ``truth``."""
    predicted = np.argmax(probabilities, axis=1)
    return float(np.mean([np.mean(predicted[truth == label] == label) for label in np.unique(truth)]))


def multiclass_auc(probabilities: np.ndarray, truth: np.ndarray) -> float | None:
    """ROC AUC for two classes; the macro one-vs-rest AUC over the classes present for more (None below two)."""
    if probabilities.shape[1] == 2:
        return roc_auc(probabilities[:, 1], truth)
    scores = [roc_auc(probabilities[:, index], (truth == index).astype(np.int64)) for index in np.unique(truth)]
    found = [score for score in scores if score is not None]
    return float(np.mean(found)) if len(found) >= 2 else None


def brier_score(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Multi-class Brier score: mean over patients of sum over classes of (p - one-hot)^2."""
    target = np.eye(probabilities.shape[1])[truth]
    return float(np.mean(np.sum((probabilities - target) ** 2, axis=1)))


def reliability_bins(probabilities: np.ndarray, truth: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per confidence bin (top-class probability, equal widths): patients, mean confidence, accuracy."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    out = []
    for position in range(bins):
        inside = index == position
        if inside.any():
            out.append({"low": position / bins, "high": (position + 1) / bins, "patients": int(inside.sum()),
                        "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())})
    return out


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """ECE: the patient-weighted mean |accuracy - confidence| over the reliability bins."""
    bins = reliability_bins(probabilities, truth)
    return float(sum(b["patients"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / max(1, len(truth)))


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for class 1 against class 0 (ties count half); None if a class is
    absent."""
    positive, negative = scores[truth == 1], scores[truth == 0]
    if not len(positive) or not len(negative):
        return None
    greater = (positive[:, np.newaxis] > negative[np.newaxis, :]).sum()
    ties = (positive[:, np.newaxis] == negative[np.newaxis, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))
