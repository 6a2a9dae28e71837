"""The whole trained classifier, kept: the DEN trunk (``den_trained.weights.h5``) plus its softmax head
(``den_head.npz``), linked by the training record, and the one function that applies them to a case.

A case is scored exactly as extraction computes its features (:class:`~DENExtractorLib.extraction.extractor.DENExtractor`
with the record's preprocessing settings and the trained weights), then every tumour slice's features go through
the head (float64 softmax) and the case's class probabilities are the mean over its tumour slices. ``den-train``
computes the test predictions it reports with this very function after saving, so reloading the files regenerates
them exactly. The head file holds plain arrays (no pickled objects), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..extraction.extractor import DENExtractor
from ..hashing import file_sha256
from ..network.architecture import FEATURE_COUNT
from ..network.trained_record import TRAINING_RECORD_FORMAT, TRAINING_RECORD_NAME
from ..outputs.atomic import write_atomically
from ..readers.limits import read_bounded_json_object
from ..settings import ExtractionSettings

HEAD_FILE = "den_head.npz"
HEAD_FORMAT = "den-head/1"
MAX_HEAD_CLASSES = 1000
MAX_HEAD_BYTES = (FEATURE_COUNT + 1) * MAX_HEAD_CLASSES * 4 + 1024 * 1024
"""The most a head's arrays may hold once inflated: float32 kernel and bias for 1000 classes, plus the names."""
MAX_TRAINING_RECORD_BYTES = 64 * 1024 * 1024
"""A training record lists the split's case ids: megabytes at most."""


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
    """Load the classifier ``den-train`` wrote into ``model_dir``, checking every file against the record: the
    record read bounded, the weights and head files by sha256, the head's arrays against the record's classes (shape
    (4096, classes), float32, finite) before any case is scored."""
    model_dir = Path(model_dir)
    record_path = model_dir / TRAINING_RECORD_NAME
    record = _read_training_record(record_path)
    try:
        outputs, preprocessing, classes = record["outputs"], record["preprocessing"], tuple(record["classes"])
        head_entry, weights_entry, model_id = outputs["head"], outputs["weights"], str(record["model_id"])
        head_path = model_dir / Path(head_entry["file"]).name
        weights_path = model_dir / Path(weights_entry["file"]).name
    except (KeyError, TypeError, ValueError) as error:
        raise DENError(record_path, f"not a den-train record with a saved head ({error} is missing or damaged; "
                                    "train again with this version)") from None
    for path, entry in ((head_path, head_entry), (weights_path, weights_entry)):
        if not path.is_file() or file_sha256(path) != entry.get("sha256"):
            raise DENError(path, "missing, or not the file the training record names (its sha256 differs)")
    try:
        settings = ExtractionSettings.from_record({**preprocessing, "weights": str(weights_path)})
    except (KeyError, TypeError) as error:
        raise DENError(record_path, f"its preprocessing entry lacks {error}") from None
    except DENError as error:
        raise DENError(record_path, f"its preprocessing entry: {error}") from None
    kernel, bias, head_classes = _read_head(head_path)
    _check_head(head_path, kernel, bias, head_classes, classes)
    provenance = {"model_id": model_id, "training_record": str(record_path),
                  "training_record_sha256": file_sha256(record_path), "head_sha256": head_entry["sha256"],
                  "weights_sha256": weights_entry["sha256"], "classes": list(classes),
                  "aggregation": "mean over tumour slices of the head's softmax on each slice's DEN features"}
    return TrainedClassifier(DENExtractor(settings), kernel, bias, classes, model_id, provenance)


def _read_training_record(path: Path) -> dict:
    """The training record as JSON data, read bounded from a regular file, of the format this version writes."""
    record = read_bounded_json_object(path, MAX_TRAINING_RECORD_BYTES, "den-train record")
    if record.get("format") != TRAINING_RECORD_FORMAT:
        raise DENError(path, f"unknown training record format {record.get('format')!r}")
    return record


def _check_head(path: Path, kernel: np.ndarray, bias: np.ndarray, head_classes: list[str],
                classes: tuple[str, ...]) -> None:
    """The head must be the record's: one column per recorded class over DEN's 4096 features, float32, finite."""
    expected = (FEATURE_COUNT, len(classes))
    if tuple(head_classes) != classes:
        raise DENError(path, "its classes differ from the training record's")
    if kernel.shape != expected or bias.shape != (len(classes),):
        raise DENError(path, f"head arrays of shapes {kernel.shape} and {bias.shape}, where the training record's "
                             f"{len(classes)} classes need {expected} and ({len(classes)},)")
    if kernel.dtype != np.float32 or bias.dtype != np.float32:
        raise DENError(path, f"head arrays of type {kernel.dtype} and {bias.dtype}, where den-train writes float32")
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise DENError(path, "the head holds values that are not finite numbers (NaN or infinite)")


def classifier_from_files(weights: Path, head: Path, settings: ExtractionSettings, model_id: str) -> TrainedClassifier:
    """The classifier of a weights file and a head file with given settings (what ``den-train`` just saved)."""
    kernel, bias, classes = _read_head(head)
    return TrainedClassifier(DENExtractor(replace(settings, weights=weights)), kernel, bias, tuple(classes), model_id,
                             {})


def _read_head(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Kernel, bias and classes of a head file, refusing anything else; every array's declared size is checked
    before it is inflated."""
    if not path.is_file():
        raise DENError(path, "not a regular file: expected a den-train head file")
    try:
        declared = _declared_bytes(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        raise DENError(path, "not a den-train head file") from None
    if declared > MAX_HEAD_BYTES:
        raise DENError(path, f"its arrays declare {declared} bytes, more than a head of DEN's 4096 features over "
                             f"{MAX_HEAD_CLASSES} classes (at most {MAX_HEAD_BYTES})")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["format"]) != HEAD_FORMAT:
                raise ValueError("format")
            kernel, bias, classes = arrays["kernel"], arrays["bias"], [str(name) for name in arrays["classes"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        raise DENError(path, "not a den-train head file") from None
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],) or len(classes) != kernel.shape[1]:
        raise DENError(path, f"head arrays of inconsistent shapes {kernel.shape}, {bias.shape}")
    return kernel, bias, classes


def _declared_bytes(path: Path) -> int:
    """The bytes a ``.npz`` declares before anything is inflated: each member's size in the zip directory and the
    size of the array its ``.npy`` header announces, whichever is larger."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(handle)
            total += max(member.file_size, int(np.prod(shape, dtype=np.float64)) * dtype.itemsize)
    return total
