"""``den-train``'s pipeline, stage by stage: read the labelled cohort, cache the preprocessed slices, split by
patient into training, validation and test, build DEN plus a head, train (validation chooses the epoch), save the
whole classifier, fit the linear-probe baselines on the training patients, score the test patients once, judge,
write the outputs and the model card."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError
from ..extraction.provenance import software_versions
from ..hashing import file_sha256
from ..network.architecture import PARAMETER_COUNT
from ..network.bundled import weights_sha256
from ..network.trained_record import TRAINING_RECORD_FORMAT
from ..outputs.atomic import write_atomically
from ..outputs.output_folder import prepare_output_folder
from ..robustness.feature_filter import RobustFeatures, robust_features
from .baseline import fit_probe, pooled_features, require_scikit_learn
from .cache import CachedCase, cache_cases, cache_trunk_outputs, read_rows
from .card import model_card
from .classifier import classifier_from_files, write_head
from .config import TrainingConfig
from .data import ReadCase, SliceSet, class_weights, slice_set
from .evaluation import classification_metrics, patient_probabilities, reliability_bins
from .labelled import LabelledCohort, read_labelled_cohort
from .loop import LoopResult, train_loop
from .model import HEAD_NAME, TrainableDEN, build_trainable, make_deterministic
from .report import (
    no_test_verdict,
    output_paths,
    save_reliability_png,
    save_training_png,
    write_predictions,
    write_record,
    write_weights,
)
from .split import PatientSplit, split_patients

Messages = Callable[[str], None]
FEATURE_BATCH = 16
"""Slices per forward pass when computing pooled features (extraction's batch size)."""

BASELINE_NOTE = (
    "class-balanced L2 logistic regression on pooled features (mean and max over tumour slices), fitted on the "
    "training patients only: features constant over them removed, robust scaling (median, interquartile range) "
    "clipped to +-5, C chosen by grouped stratified inner cross-validation on them; validation and test patients "
    "are only scored. 'trained_weights' is the same probe on the trained trunk's features"
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
    robust: RobustFeatures | None = None

    def side(self, name: str) -> list[CachedCase]:
        """The cases of one side of the split ("train", "val", "test"), in split order."""
        by_id = {case.case_id: case for case in self.cases}
        return [by_id[case_id] for case_id in getattr(self.split, name)]

    def groups(self, name: str) -> list[str]:
        """The group (patient) of every case of one side, in split order."""
        patient = {case.case_id: case.patient for case in self.cohort.cases}
        return [patient[case_id] for case_id in getattr(self.split, name)]


def train(cases_csv: str | Path, label_column: str, model_dir: str | Path, config: TrainingConfig | None = None,
          *, on_message: Messages | None = None) -> TrainingResult:
    """Train DEN's weights on a labelled cases CSV and write them, with their record, into ``model_dir``.

    Training patients fit the weights, validation patients choose the epoch, and the test patients are scored once,
    at the end, with the saved classifier; the verdict is about them. Example: ``train("labels.csv", "grade",
    "model", TrainingConfig(epochs=20)).paths["weights"]`` is a ``.weights.h5`` that ``den-extract --weights``
    loads. Raises :class:`DENError` (one line) for bad input.
    """
    started = time.perf_counter()
    config = config or TrainingConfig()
    say = on_message or (lambda text: None)
    run = _prepare(cases_csv, label_column, model_dir, config, say)
    base_features = _pooled(run)
    loop = train_loop(run.model, run.train_set, run.val_set, run.read_case, class_count=len(run.cohort.classes),
                      weights=run.class_weights, epochs=config.epochs, batch_size=config.batch_size,
                      patience=config.patience, seed=config.seed, on_epoch=lambda record: say(_epoch_line(record)))
    paths = output_paths(run.model_dir)
    model_id = _save_classifier(run, paths)
    evaluation = _evaluate(run, loop, base_features, _pooled(run), paths, model_id)
    say(evaluation["verdict"]["text"])
    return _write_outputs(run, loop, evaluation, paths, model_id, started)


def _prepare(cases_csv: str | Path, label_column: str, model_dir: str | Path, config: TrainingConfig,
             say: Messages) -> _Run:
    """Read and check the cohort, cache its slices, split its patients, build the model and the slice sets."""
    require_scikit_learn()
    cohort = read_labelled_cohort(cases_csv, label_column)
    _check_patients_stated(cohort, config, say)
    model_dir = prepare_output_folder(model_dir)
    for exclusion in cohort.excluded:
        say(exclusion.message)
    cached, failures = cache_cases(cohort, model_dir, config.settings, on_case=_case_reporter(say))
    cohort = cohort.without(failures)
    cached = _with_final_classes(cached, cohort)
    split = split_patients(cohort, config.val_fraction, config.test_fraction, config.seed)
    robust = None
    if config.robustness is not None and config.min_icc is not None:  # from the training cases only: no leak
        robust = robust_features(config.robustness, list(split.train), config.min_icc, config.settings)
        say(f"robustness filter: {robust.record['features_passed']} of {robust.record['features_in']} features with "
            f"{robust.record['form']} >= {config.min_icc:g} on {robust.record['training_cases']} training cases")
    make_deterministic(config.seed)
    model = build_trainable(config.settings.weights, len(cohort.classes), config.train_layers, config.learning_rate,
                            config.seed)
    cases, read_case = _classifier_data(model, cached)
    by_id = {case.case_id: case for case in cases}
    train_set = slice_set([by_id[case_id] for case_id in split.train])
    val_set = slice_set([by_id[case_id] for case_id in split.val])
    say(f"{len(split.train)} training cases ({len(train_set)} slices), {len(split.val)} validation cases "
        f"({len(val_set)} slices), {len(split.test)} test cases; classes {', '.join(cohort.classes)}")
    weights = class_weights(train_set.labels, len(cohort.classes))
    return _Run(config, model_dir, cohort, split, model, cases, read_case, train_set, val_set, weights, robust)


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
    """Every case's pooled vector with the model's current trunk weights, in ``run.cases`` order."""

    def features_of(case: CachedCase) -> np.ndarray:
        return np.concatenate([
            run.model.features(run.read_case(case, np.arange(start, min(start + FEATURE_BATCH, case.slices))))
            for start in range(0, case.slices, FEATURE_BATCH)
        ])

    return pooled_features(run.cases, features_of)


def _check_patients_stated(cohort: LabelledCohort, config: TrainingConfig, say: Messages) -> None:
    """Refuse ``--one-case-per-patient`` when a group has several cases; without a ``group`` column and without the
    option, say that every case is taken as its own patient and that no "better" claim will be made."""
    cases_of: dict[str, int] = {}
    for case in cohort.cases:
        cases_of[case.patient] = cases_of.get(case.patient, 0) + 1
    shared = sorted(group for group, count in cases_of.items() if count > 1)
    if config.one_case_per_patient and shared:
        raise DENError(cohort.source, f"--one-case-per-patient, but group {shared[0]!r} has {cases_of[shared[0]]} "
                                      "cases: drop the option (the group column already names the patients)")
    if not _patients_known(cohort, config):
        say(f"{cohort.source}: no 'group' column, so every case is taken as its own patient; den-train will not call "
            "anything better than chance or the baseline unless you add the column or pass --one-case-per-patient "
            "(every case a different patient)")


def _patients_known(cohort: LabelledCohort, config: TrainingConfig) -> bool:
    """Whether the cases' patients are known: a ``group`` column, or one case per patient stated."""
    return config.one_case_per_patient or any(case.group for case in cohort.cases)


def _save_classifier(run: _Run, paths: dict[str, Path]) -> str:
    """Write the trunk's weights and the head (the whole classifier); return the model id."""
    final_sha256 = weights_sha256(run.model.trunk_weights())
    model_id = run.config.model_id or f"den-trained-{_slug(run.cohort.label_column)}-{final_sha256[:12]}"
    write_weights(run.model.trunk, paths["weights"])
    kernel, bias = run.model.classifier.get_layer(HEAD_NAME).get_weights()
    write_head(paths["head"], kernel, bias, run.cohort.classes)
    return model_id


def _evaluate(run: _Run, loop: LoopResult, base_features: np.ndarray, trained_features: np.ndarray,
              paths: dict[str, Path], model_id: str) -> dict:
    """Validation metrics of the kept epoch, the probes, then (once) the test patients and the verdict."""
    class_count, seed = len(run.cohort.classes), run.config.seed
    assert loop.val_slice_probabilities is not None  # the loop ran at least one epoch
    val_probabilities = patient_probabilities(loop.val_slice_probabilities, run.val_set.patient,
                                              len(run.val_set.cases))
    rows = {case.case_id: index for index, case in enumerate(run.cases)}
    picks = {side: np.asarray([rows[case_id] for case_id in getattr(run.split, side)], dtype=np.int64)
             for side in ("train", "val", "test")}
    labels = np.asarray([case.label_index for case in run.cases])
    probes: dict[str, dict] = {}
    probe_test: dict[str, np.ndarray] = {}
    for name, features in (("base_weights", base_features), ("trained_weights", trained_features)):
        allowed = run.robust.kept if run.robust is not None and name == "base_weights" else None
        probe = fit_probe(features[picks["train"]], labels[picks["train"]], run.groups("train"), class_count, seed,
                          allowed)
        probes[name] = {"fit": probe.describe(), "validation": classification_metrics(
            probe.probabilities(features[picks["val"]]), labels[picks["val"]], class_count)}
        if run.split.test:
            probe_test[name] = probe.probabilities(features[picks["test"]])
    evaluation = {"val_probabilities": val_probabilities,
                  "validation": classification_metrics(val_probabilities, run.val_set.patient_labels, class_count),
                  "baseline": dict(probes, note=BASELINE_NOTE,
                                   robustness_filter=None if run.robust is None else run.robust.record)}
    if not run.split.test:
        evaluation.update(test=None, test_probabilities=None, verdict=no_test_verdict())
        return evaluation
    from .verdict import judge  # scipy: imported once require_scikit_learn has checked the train extra

    # the test patients, touched once: everything above is fixed before their labels are read
    test_probabilities = _score_test_cases(run, paths, model_id)
    truth = labels[picks["test"]]
    evaluation["test_probabilities"] = test_probabilities
    evaluation["test"] = {
        "network": dict(classification_metrics(test_probabilities, truth, class_count),
                        reliability=reliability_bins(test_probabilities, truth)),
        **{name: dict(classification_metrics(values, truth, class_count), reliability=reliability_bins(values, truth))
           for name, values in probe_test.items()},
    }
    evaluation["verdict"] = judge(truth, test_probabilities, probe_test["base_weights"], run.groups("test"),
                                  f"the linear probe on {run.model.base.model_id} features", seed,
                                  patients_known=_patients_known(run.cohort, run.config),
                                  others={"trained_weights_probe": probe_test["trained_weights"]})
    return evaluation


def _score_test_cases(run: _Run, paths: dict[str, Path], model_id: str) -> np.ndarray:
    """(test cases, classes): the saved classifier (weights and head files) applied to the test cases' files."""
    classifier = classifier_from_files(paths["weights"], paths["head"], run.config.settings, model_id)
    by_id = {case.case_id: case for case in run.cohort.cases}
    return np.stack([classifier.score(by_id[case_id].segmentation, by_id[case_id].image)[0]
                     for case_id in run.split.test])


def _write_outputs(run: _Run, loop: LoopResult, evaluation: dict, paths: dict[str, Path], model_id: str,
                   started: float) -> TrainingResult:
    """Write pictures, predictions and the model card, then the record naming them (with their sha256) last."""
    cohort, classes = run.cohort, run.cohort.classes
    title = f"{model_id}: '{cohort.label_column}' ({run.config.train_layers} layers trained)"
    save_training_png(paths["png"], loop.epochs, loop.best_epoch, evaluation["validation"]["confusion_matrix"],
                      classes, title)
    val_cases, test_cases = run.side("val"), run.side("test")
    write_predictions(paths["predictions"], [case.case_id for case in val_cases],
                      [classes[case.label_index] for case in val_cases], evaluation["val_probabilities"],
                      [case.slices for case in val_cases], classes)
    kinds = ["weights", "head", "png", "predictions"]
    if evaluation["test"] is not None:
        write_predictions(paths["test_predictions"], [case.case_id for case in test_cases],
                          [classes[case.label_index] for case in test_cases], evaluation["test_probabilities"],
                          [case.slices for case in test_cases], classes, exact=True)
        test = evaluation["test"]
        save_reliability_png(paths["reliability"], {"trained network": test["network"]["reliability"],
                                                    "linear probe, base weights": test["base_weights"]["reliability"]},
                             f"{model_id}: reliability on the {len(test_cases)} test cases")
        kinds += ["test_predictions", "reliability"]
    written = {kind: {"file": paths[kind].name, "sha256": file_sha256(paths[kind])} for kind in kinds}
    record = _record(run, loop, evaluation, model_id, written)
    card = model_card(record)
    write_atomically(paths["card"], lambda path: _write_text(path, card))
    record["outputs"]["card"] = {"file": paths["card"].name, "sha256": file_sha256(paths["card"])}
    record["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    write_record(paths["record"], record)
    return TrainingResult(paths, record)


def _record(run: _Run, loop: LoopResult, evaluation: dict, model_id: str, written: dict) -> dict:
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
                        f"head; the trunk is in {written['weights']['file']}, the head in {written['head']['file']}",
        "classifier": {"weights": written["weights"]["file"], "head": written["head"]["file"],
                       "aggregation": "mean over tumour slices of the head's softmax on each slice's DEN features",
                       "score_new_cases": "den-score --model MODEL_DIR --cases CSV -o scores.csv"},
        "preprocessing": {"function": "DENExtractorLib.extraction.preprocessing.preprocess, as DENExtractor.extract calls it",
                          **{name: hyperparameters[name] for name in ("mode", "plane", "labels", "label_max")},
                          "image_mode": cohort.image_mode},
        "split": {"method": run.split.method, "train": list(run.split.train), "val": list(run.split.val),
                  "test": list(run.split.test), "groups": _groups_record(run)},
        "excluded": [{"case_id": item.case_id, "message": item.message} for item in cohort.excluded],
        "seed": config.seed,
        "hyperparameters": hyperparameters,
        "slices": {"train": len(run.train_set), "val": len(run.val_set),
                   "test": sum(case.slices for case in run.side("test"))},
        "epochs": loop.epochs,
        "best_epoch": loop.best_epoch,
        "stopped_early": loop.stopped_early,
        "validation": evaluation["validation"],
        "baseline": evaluation["baseline"],
        "test": evaluation["test"],
        "verdict": evaluation["verdict"],
        "weights": {
            "base": {"model_id": base.model_id, "sha256": base.sha256, "source": base.source,
                     "file_sha256": base.file_sha256},
            "final": {"sha256": weights_sha256(run.model.trunk_weights()), "file": written["weights"]["file"],
                      "file_sha256": written["weights"]["sha256"]},
        },
        "software": dict(software_versions(), **{"scikit-learn": metadata.version("scikit-learn")}),
        "outputs": written,
    }


def _groups_record(run: _Run) -> dict:
    """Per side: groups (patients), cases and cases per class."""
    label_of = {case.case_id: case.label for case in run.cohort.cases}
    out: dict[str, Any] = {}
    for side in ("train", "val", "test"):
        ids = getattr(run.split, side)
        out[side] = {"groups": len(set(run.groups(side))), "cases": len(ids),
                     "classes": {name: sum(label_of[case_id] == name for case_id in ids)
                                 for name in run.cohort.classes}}
    out["from_column"] = any(case.group for case in run.cohort.cases)
    out["one_case_per_patient"] = run.config.one_case_per_patient
    return out


def _write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file (for :func:`write_atomically`)."""
    path.write_text(text, encoding="utf-8")


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
