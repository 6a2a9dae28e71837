"""The whole trained classifier, kept: the DEN trunk (``den_trained.weights.h5``) plus its softmax head
(``den_head.npz``), linked by the training record, and the one function that applies them to a case.

A case is scored exactly as extraction computes its features (:class:`~DENExtractorLib.extractor.DENExtractor`
with the record's preprocessing settings and the trained weights), then every tumour slice's features go through
the head (float64 softmax) and the case's class probabilities are the mean over its tumour slices. ``den-train``
computes the test predictions it reports with this very function after saving, so reloading the files regenerates
them exactly. The head file holds plain arrays (no pickled objects), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..extractor import DENExtractor
from ..hashing import file_sha256
from ..network.trained_record import TRAINING_RECORD_FORMAT, TRAINING_RECORD_NAME
from ..outputs.atomic import write_atomically
from ..settings import ExtractionSettings

HEAD_FILE = "den_head.npz"
HEAD_FORMAT = "den-head/1"


def write_head(path: Path, kernel: np.ndarray, bias: np.ndarray, classes: tuple[str, ...]) -> Path:
    """Save the head's kernel (4096, classes), bias and class names as a ``.npz`` of plain arrays."""

    def save(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a handle: np.savez would append ".npz" to the temporary name
            np.savez(handle, format=np.asarray(HEAD_FORMAT), kernel=np.asarray(kernel, dtype=np.float32),
                     bias=np.asarray(bias, dtype=np.float32), classes=np.asarray(classes, dtype=str))

    return write_atomically(path, save)


@dataclass
class TrainedClassifier:
    """A loaded classifier: the extractor (trunk and preprocessing), the head and the record it came from."""

    extractor: DENExtractor
    kernel: np.ndarray
    bias: np.ndarray
    classes: tuple[str, ...]
    model_id: str
    provenance: dict

    def score(self, segmentation: str | Path, image: str | Path | None = None) -> tuple[np.ndarray, int, dict]:
        """(class probabilities, tumour slices, extraction provenance) of one case, read from its files."""
        result = self.extractor.extract_file(segmentation, image)
        features = result.features[result.foreground_rows]
        return self.probabilities(features), len(features), result.provenance

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Mean over slices of the head's softmax on each slice's (4096,) features, in float64."""
        logits = features.astype(np.float64) @ self.kernel.astype(np.float64) + self.bias.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        return (exponentials / exponentials.sum(axis=1, keepdims=True)).mean(axis=0)


def load_classifier(model_dir: str | Path) -> TrainedClassifier:
    """Load the classifier ``den-train`` wrote into ``model_dir``, checking every file against the record."""
    model_dir = Path(model_dir)
    record_path = model_dir / TRAINING_RECORD_NAME
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        outputs, preprocessing = record["outputs"], record["preprocessing"]
        head_entry, weights_entry = outputs["head"], outputs["weights"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DENError(record_path, "not a den-train record with a saved head (train again with this "
                                    "version)") from None
    if record.get("format") != TRAINING_RECORD_FORMAT:
        raise DENError(record_path, f"unknown training record format {record.get('format')!r}")
    head_path, weights_path = model_dir / Path(head_entry["file"]).name, model_dir / Path(weights_entry["file"]).name
    for path, entry in ((head_path, head_entry), (weights_path, weights_entry)):
        if not path.is_file() or file_sha256(path) != entry["sha256"]:
            raise DENError(path, "missing, or not the file the training record names (its sha256 differs)")
    settings = ExtractionSettings(preprocessing["mode"], preprocessing["plane"] if preprocessing["mode"] == "oriented"
                                  else None, None if preprocessing["labels"] == "all" else preprocessing["labels"],
                                  weights_path, preprocessing.get("label_max"))
    kernel, bias, classes = _read_head(head_path)
    if tuple(classes) != tuple(record["classes"]):
        raise DENError(head_path, "its classes differ from the training record's")
    provenance = {"model_id": record["model_id"], "training_record": str(record_path),
                  "training_record_sha256": file_sha256(record_path), "head_sha256": head_entry["sha256"],
                  "weights_sha256": weights_entry["sha256"], "classes": list(classes),
                  "aggregation": "mean over tumour slices of the head's softmax on each slice's DEN features"}
    return TrainedClassifier(DENExtractor(settings), kernel, bias, tuple(classes), record["model_id"], provenance)


def classifier_from_files(weights: Path, head: Path, settings: ExtractionSettings, model_id: str) -> TrainedClassifier:
    """The classifier of a weights file and a head file with given settings (what ``den-train`` just saved)."""
    kernel, bias, classes = _read_head(head)
    chosen = ExtractionSettings(settings.mode, settings.plane, settings.labels, weights, settings.label_max)
    return TrainedClassifier(DENExtractor(chosen), kernel, bias, tuple(classes), model_id, {})


def _read_head(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Kernel, bias and classes of a head file, refusing anything else."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["format"]) != HEAD_FORMAT:
                raise ValueError("format")
            kernel, bias, classes = arrays["kernel"], arrays["bias"], [str(name) for name in arrays["classes"]]
    except (OSError, ValueError, KeyError):
        raise DENError(path, "not a den-train head file") from None
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],) or len(classes) != kernel.shape[1]:
        raise DENError(path, f"head arrays of inconsistent shapes {kernel.shape}, {bias.shape}")
    return kernel, bias, classes
