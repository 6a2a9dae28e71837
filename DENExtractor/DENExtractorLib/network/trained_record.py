"""Linking trained weights to their training record, for extraction's provenance (no TensorFlow needed).

``den-train`` writes ``den_trained.weights.h5`` and, beside it, ``den_trained.json``, which records the weights
file's sha256. When ``--weights`` names such a file, extraction can record the trained model's id and the training
record's sha256, so every feature file leads back to the labels CSV, the split and the hyperparameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..hashing import file_sha256

TRAINING_RECORD_NAME = "den_trained.json"
TRAINING_RECORD_FORMAT = "den-trained/1"


def model_provenance(model_id: str, weights_sha256: str, weights_source: str) -> dict:
    """The ``model`` entry of extraction provenance: id, weights sha256 and source and, for weights that
    ``den-train`` wrote (their record beside them), the trained model id and the training record's path and sha256.

    ``weights_sha256`` is the weights file's sha256 as extraction already computed it (not hashed again here).
    """
    entry = {"id": model_id, "weights_sha256": weights_sha256, "weights_source": weights_source}
    if weights_source != "bundled":
        link = trained_model_link(weights_source, weights_sha256)
        if link is not None:
            entry.update(id=link["model_id"], training_record=link["training_record"],
                         training_record_sha256=link["training_record_sha256"])
    return entry


def trained_model_link(weights: str | Path, weights_sha256: str | None = None) -> dict | None:
    """The training record of a weights file, when ``den_trained.json`` beside it describes this very file.

    Returns ``{"model_id", "training_record", "training_record_sha256"}`` (the record's path and the sha256 of
    its bytes), or None when there is no record, it is unreadable, or it records another file's sha256 (a stale
    record next to replaced weights is never trusted). ``weights_sha256``: the file's sha256 if already known.
    """
    weights = Path(weights)
    record_path = weights.with_name(TRAINING_RECORD_NAME)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        recorded_sha256 = record["weights"]["final"]["file_sha256"]
        model_id = record["model_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("format") != TRAINING_RECORD_FORMAT or not weights.is_file():
        return None
    if recorded_sha256 != (weights_sha256 or file_sha256(weights)):
        return None
    return {"model_id": str(model_id), "training_record": str(record_path), "training_record_sha256": file_sha256(record_path)}
