"""``den-train``'s pipeline, stage by stage: read the labelled cohort, cache the preprocessed slices, split by
patient, build DEN plus a head, train, evaluate against the linear-probe baseline, write the outputs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from ..hashing import file_sha256
from ..network.architecture import PARAMETER_COUNT
from ..network.bundled import weights_sha256
from ..network.trained_record import TRAINING_RECORD_FORMAT
from ..outputs.output_folder import prepare_output_folder
from ..outputs.provenance import software_versions
from .baseline import linear_probe, pooled_features, require_scikit_learn
from .cache import CachedCase, cache_cases, cache_trunk_outputs, read_rows
from .config import TrainingConfig
from .data import ReadCase, SliceSet, class_weights, slice_set
from .evaluation import classification_metrics, patient_probabilities
from .labelled import LabelledCohort, read_labelled_cohort
from .loop import LoopResult, train_loop
from .model import TrainableDEN, build_trainable, make_deterministic
from .report import (
    output_paths,
    save_training_png,
    verdict,
    write_predictions,
    write_record,
    write_weights,
)
from .split import PatientSplit, split_patients

Messages = Callable[[str], None]
FEATURE_BATCH = 16
"""Slices per forward pass when computing pooled features (extraction's batch size)."""

BASELINE_NOTE = (
    "logistic regression (standardised, class-balanced) on pooled features (mean and max over tumour slices); "
    "'validation_split' is fitted on the training patients and scored on the validation patients; "
    "'cross_validation' uses every patient and, for the trained weights, is optimistic because those weights were "
    "trained on the training patients' labels"
)


@dataclass
class TrainingResult:
    """What a training run produced: the output paths and the training record (as written)."""

    paths: dict[str, Path]
    record: dict


@dataclass
class _Run:
    """Everything one run has prepared before training: the cohort, its split, the model and the slices."""

    config: TrainingConfig
    model_dir: Path
    cohort: LabelledCohort
    split: PatientSplit
    model: TrainableDEN
    cases: list[CachedCase]
    read_case: ReadCase
    train_set: SliceSet
    val_set: SliceSet
    class_weights: dict[int, float]


def train(cases_csv: str | Path, label_column: str, model_dir: str | Path, config: TrainingConfig | None = None,
          *, on_message: Messages | None = None) -> TrainingResult:
    """Train DEN's weights on a labelled cases CSV and write them, with their record, into ``model_dir``.

    Example: ``train("labels.csv", "grade", "model", TrainingConfig(epochs=20)).paths["weights"]`` is a
    ``.weights.h5`` that ``den-extract --weights`` loads. Raises :class:`DENError` (one line) for bad input.
    """
    started = time.perf_counter()
    config = config or TrainingConfig()
    say = on_message or (lambda text: None)
    run = _prepare(cases_csv, label_column, model_dir, config, say)
    base_features = _pooled(run)
    loop = train_loop(run.model, run.train_set, run.val_set, run.read_case, class_count=len(run.cohort.classes),
                      weights=run.class_weights, epochs=config.epochs, batch_size=config.batch_size,
                      patience=config.patience, seed=config.seed, on_epoch=lambda record: say(_epoch_line(record)))
    evaluation = _evaluate(run, loop, base_features, _pooled(run))
    say(evaluation["verdict"]["text"])
    return _write_outputs(run, loop, evaluation, output_paths(run.model_dir), started)


def _prepare(cases_csv: str | Path, label_column: str, model_dir: str | Path, config: TrainingConfig,
             say: Messages) -> _Run:
    """Read and check the cohort, cache its slices, split its patients, build the model and the slice sets."""
    require_scikit_learn()
    cohort = read_labelled_cohort(cases_csv, label_column)
    model_dir = prepare_output_folder(model_dir)
    for exclusion in cohort.excluded:
        say(exclusion.message)
    cached, failures = cache_cases(cohort, model_dir, config.settings, on_case=_case_reporter(say))
    cohort = cohort.without(failures)
    cached = _with_final_classes(cached, cohort)
    split = split_patients(cohort, config.val_fraction, config.seed)
    make_deterministic(config.seed)
    model = build_trainable(config.settings.weights, len(cohort.classes), config.train_layers, config.learning_rate,
                            config.seed)
    cases, read_case = _classifier_data(model, cached)
    by_id = {case.case_id: case for case in cases}
    train_set = slice_set([by_id[patient] for patient in split.train])
    val_set = slice_set([by_id[patient] for patient in split.val])
    say(f"{len(split.train)} training patients ({len(train_set)} slices), {len(split.val)} validation patients "
        f"({len(val_set)} slices); classes {', '.join(cohort.classes)}")
    weights = class_weights(train_set.labels, len(cohort.classes))
    return _Run(config, model_dir, cohort, split, model, cases, read_case, train_set, val_set, weights)


def _with_final_classes(cached: list[CachedCase], cohort: LabelledCohort) -> list[CachedCase]:
    """The cached cases numbered by the cohort's final classes (a class whose every case failed is gone)."""
    by_id = {case.case_id: case for case in cohort.cases}
    return [replace(entry, label_index=cohort.class_index(by_id[entry.case_id])) for entry in cached]


def _classifier_data(model: TrainableDEN, cached: list[CachedCase]) -> tuple[list[CachedCase], ReadCase]:
    """The cases as the classifier reads them: network inputs, or (dense training) cached frozen-trunk outputs."""
    if model.frozen is None:
        return cached, lambda case, rows: case.network_inputs(rows)
    cases = cache_trunk_outputs(cached, model.frozen_key(), model.classifier_input)
    return cases, lambda case, rows: read_rows(case.inputs, rows)


def _pooled(run: _Run) -> np.ndarray:
    """Every patient's pooled vector with the model's current trunk weights."""

    def features_of(case: CachedCase) -> np.ndarray:
        return np.concatenate([
            run.model.features(run.read_case(case, np.arange(start, min(start + FEATURE_BATCH, case.slices))))
            for start in range(0, case.slices, FEATURE_BATCH)
        ])

    return pooled_features(run.cases, features_of)


def _evaluate(run: _Run, loop: LoopResult, base_features: np.ndarray, trained_features: np.ndarray) -> dict:
    """Patient-level validation metrics of the kept epoch, the baseline on the same patients, and the verdict."""
    class_count = len(run.cohort.classes)
    probabilities = patient_probabilities(loop.val_slice_probabilities, run.val_set.patient, len(run.val_set.cases))
    network = classification_metrics(probabilities, run.val_set.patient_labels, class_count)
    labels = np.asarray([case.label_index for case in run.cases])
    is_train = np.isin([case.case_id for case in run.cases], run.split.train)
    baseline = {
        "base_weights": linear_probe(base_features, labels, is_train, class_count, run.config.seed),
        "trained_weights": linear_probe(trained_features, labels, is_train, class_count, run.config.seed),
        "note": BASELINE_NOTE,
    }
    return {"patient_probabilities": probabilities, "validation": network, "baseline": baseline,
            "verdict": verdict(network, baseline["base_weights"], run.model.base.model_id)}


def _write_outputs(run: _Run, loop: LoopResult, evaluation: dict, paths: dict[str, Path], started: float) -> TrainingResult:
    """Write weights, picture and predictions, then the record naming them (with their sha256) last."""
    cohort, val_cases = run.cohort, run.val_set.cases
    final_sha256 = weights_sha256(run.model.trunk_weights())
    model_id = run.config.model_id or f"den-trained-{_slug(cohort.label_column)}-{final_sha256[:12]}"
    write_weights(run.model.trunk, paths["weights"])
    save_training_png(paths["png"], loop.epochs, loop.best_epoch, evaluation["validation"]["confusion_matrix"],
                      cohort.classes, f"{model_id}: '{cohort.label_column}' ({run.config.train_layers} layers trained)")
    write_predictions(paths["predictions"], [case.case_id for case in val_cases],
                      [cohort.classes[case.label_index] for case in val_cases], evaluation["patient_probabilities"],
                      [case.slices for case in val_cases], cohort.classes)
    written = {kind: {"file": path.name, "sha256": file_sha256(path)} for kind, path in paths.items() if kind != "record"}
    record = _record(run, loop, evaluation, model_id, final_sha256, written)
    record["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    write_record(paths["record"], record)
    return TrainingResult(paths, record)


def _record(run: _Run, loop: LoopResult, evaluation: dict, model_id: str, final_sha256: str, written: dict) -> dict:
    """The training record (``den_trained.json``): everything needed to trace and reproduce the weights."""
    cohort, config, base = run.cohort, run.config, run.model.base
    hyperparameters = config.hyperparameters()
    return {
        "format": TRAINING_RECORD_FORMAT,
        "model_id": model_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels_csv": {"path": str(cohort.source), "sha256": cohort.sha256},
        "label_column": cohort.label_column,
        "classes": list(cohort.classes),
        "class_weights": {cohort.classes[index]: weight for index, weight in run.class_weights.items()},
        "architecture": f"DEN layer table ({PARAMETER_COUNT:,} parameters) plus Dense({len(cohort.classes)}, softmax) "
                        "head during training; the saved weights are the DEN trunk only",
        "preprocessing": {"function": "DENExtractorLib.preprocessing.preprocess, as DENExtractor.extract calls it",
                          **{name: hyperparameters[name] for name in ("mode", "plane", "labels")},
                          "image_mode": cohort.image_mode},
        "split": {"method": run.split.method, "train": list(run.split.train), "val": list(run.split.val)},
        "excluded": [{"case_id": item.case_id, "message": item.message} for item in cohort.excluded],
        "seed": config.seed,
        "hyperparameters": hyperparameters,
        "slices": {"train": len(run.train_set), "val": len(run.val_set)},
        "epochs": loop.epochs,
        "best_epoch": loop.best_epoch,
        "stopped_early": loop.stopped_early,
        "validation": evaluation["validation"],
        "baseline": evaluation["baseline"],
        "verdict": evaluation["verdict"],
        "weights": {
            "base": {"model_id": base.model_id, "sha256": base.sha256, "source": base.source,
                     "file_sha256": base.file_sha256},
            "final": {"sha256": final_sha256, "file": written["weights"]["file"],
                      "file_sha256": written["weights"]["sha256"]},
        },
        "software": dict(software_versions(), **{"scikit-learn": metadata.version("scikit-learn")}),
        "outputs": written,
    }


def _case_reporter(say: Messages) -> Callable[[str, str], None]:
    """Report failures as their one-line message and other statuses as ``id: status``."""
    return lambda case_id, status: say(status if status.endswith("excluded") else f"{case_id}: {status}")


def _epoch_line(record: dict) -> str:
    """One line per epoch: losses and patient-level validation scores."""
    auc = record.get("val_roc_auc")
    return (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"val accuracy {record['val_accuracy']:.3f}, balanced {record['val_balanced_accuracy']:.3f}"
            + (f", AUC {auc:.3f}" if auc is not None else ""))


def _slug(text: str) -> str:
    """A label column name made safe for a model id."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "label"
