"""Patient-level evaluation: slice probabilities averaged per patient, then accuracy, balanced accuracy, ROC AUC
(two classes) and the confusion matrix."""

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


def classification_metrics(probabilities: np.ndarray, truth: np.ndarray, class_count: int) -> dict:
    """Accuracy, balanced accuracy, ROC AUC (two classes, else None) and confusion matrix (rows: true class)."""
    predicted = np.argmax(probabilities, axis=1)
    confusion = np.zeros((class_count, class_count), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    present = confusion.sum(axis=1) > 0
    recalls = np.diag(confusion)[present] / confusion.sum(axis=1)[present]
    return {
        "patients": int(len(truth)),
        "accuracy": float(np.mean(predicted == truth)),
        "balanced_accuracy": float(np.mean(recalls)),
        "roc_auc": roc_auc(probabilities[:, 1], truth) if class_count == 2 else None,
        "confusion_matrix": confusion.tolist(),
    }


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for class 1 against class 0 (ties count half); None if a class is absent."""
    positive, negative = scores[truth == 1], scores[truth == 0]
    if not len(positive) or not len(negative):
        return None
    greater = (positive[:, np.newaxis] > negative[np.newaxis, :]).sum()
    ties = (positive[:, np.newaxis] == negative[np.newaxis, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))
