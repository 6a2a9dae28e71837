"""den-train end to end on a generated labelled cohort (48 small cases whose label, a necrotic lesion or none, is
visible): it learns and says so with an interval, two runs give bit-identical weights, the test patients influence
nothing before the end, the saved classifier regenerates its test predictions and scores new cases, the weights
load with den-extract, and every output leads back to the labels CSV."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from DENExtractorLib.cli.extract import main as den_extract
from DENExtractorLib.cli.score import main as den_score
from DENExtractorLib.cli.train import main as den_train
from DENExtractorLib.hashing import file_sha256
from DENExtractorLib.network.bundled import (
    MODEL_ID,
    REFERENCE_WEIGHTS_SHA256,
    weights_sha256,
)
from DENExtractorLib.network.trained_record import model_provenance, trained_model_link
from DENExtractorLib.settings import ExtractionSettings
from DENExtractorLib.training import TrainingConfig, train
from DENExtractorLib.training.classifier import load_classifier
from DENExtractorLib.training.synthetic_cohort import write_labelled_cohort
from DENExtractorLib.training.verdict import NOT_CLAIMED, UNKNOWN_PATIENTS
from helpers import REPO_ROOT
from PIL import Image

pytestmark = pytest.mark.slow

SETTINGS = ["--epochs", "6", "--patience", "2", "--learning-rate", "1e-3", "--seed", "1"]
ONE_CASE_PER_PATIENT = ["--one-case-per-patient"]
"""The generated cases are all different patients: say so, or no 'better' claim is made (no group column)."""
CONFIG = TrainingConfig(epochs=6, patience=2, learning_rate=1e-3, seed=1, one_case_per_patient=True)
CASES = 48
SIDES = {**{f"syn{index:03d}": "test" for index in range(12)}, **{f"syn{index:03d}": "val" for index in range(12, 20)}}
"""The split column: 12 test cases (6 per class), 8 validation cases, the other 28 train."""


def with_split(labels_csv, output, labels=None):
    """The cohort's CSV plus a split column (and, optionally, other labels for some cases)."""
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    rows = [[case_id, path, (labels or {}).get(case_id, label), SIDES.get(case_id, "train")]
            for case_id, path, label in rows]
    with open(output, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([[*header, "split"], *rows])
    return output


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """48 learnable synthetic cases with a split column, plus a row without a label and a corrupt case."""
    folder = tmp_path_factory.mktemp("labelled")
    generated = write_labelled_cohort(folder, cases=CASES, shape=(32, 32, 16), seed=5, whole_lesion=True)
    path = with_split(generated, folder / "split.csv")
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not gzip data")
    with open(path, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["unlabelled", "syn000.nii.gz", "", "train"],
                                      ["broken", "broken.nii.gz", "present", "train"]])
    return path


@pytest.fixture(scope="session")
def cli_run(cohort, tmp_path_factory):
    """``den-train`` as a user runs it, in its own process: (model dir, training record, stderr)."""
    model_dir = tmp_path_factory.mktemp("cli") / "model"
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    finished = subprocess.run(
        [sys.executable, "-m", "DENExtractorLib.cli.train", "--cases", str(cohort), "--label-column", "necrosis",
         "-o", str(model_dir), *SETTINGS, *ONE_CASE_PER_PATIENT],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return model_dir, json.loads((model_dir / "den_trained.json").read_text()), finished.stderr


def train_reusing_cache(cli_run, labels_csv, model_dir, config=CONFIG):
    """Train into ``model_dir`` after copying the CLI run's slice cache (entries are keyed by content)."""
    shutil.copytree(cli_run[0] / "cache", model_dir / "cache")
    return train(labels_csv, "necrosis", model_dir, config)


@pytest.fixture(scope="session")
def api_run(cli_run, cohort, tmp_path_factory):
    """The same training through the Python API, in this process: its TrainingResult."""
    return train_reusing_cache(cli_run, cohort, tmp_path_factory.mktemp("api") / "model")


def test_a_learnable_label_is_reported_better_than_chance_on_the_test_patients(cli_run):
    model_dir, record, stderr = cli_run
    verdict = record["verdict"]
    assert verdict["test_patients"] == 12 and record["test"]["network"]["patients"] == 12
    assert verdict["better_than_chance"] and verdict["chance"] == "better than chance"
    assert verdict["against_chance"]["p_value"] < 0.05 and verdict["against_chance"]["exact"]
    auc = verdict["network"]["roc_auc"]
    assert auc["interval"][0] > 0.5 if auc["interval"] else auc["no_interval"] == "every resample gives 1.000"
    assert verdict["text"].startswith("Better than chance on 12 test patients") and verdict["text"] in stderr
    assert "no 'group' column" not in stderr
    with open(model_dir / "test_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case_id"] for row in rows] == record["split"]["test"] == [f"syn{index:03d}" for index in range(12)]
    assert np.mean([row["correct"] == "1" for row in rows]) == record["test"]["network"]["accuracy"]


def test_patients_are_split_never_slices_and_failures_are_listed(cli_run):
    _, record, stderr = cli_run
    sides = [set(record["split"][side]) for side in ("train", "val", "test")]
    assert sides[0].isdisjoint(sides[1]) and sides[0].isdisjoint(sides[2]) and sides[1].isdisjoint(sides[2])
    assert set().union(*sides) == {f"syn{index:03d}" for index in range(CASES)}
    assert record["split"]["groups"]["test"] == {"groups": 12, "cases": 12, "classes": {"absent": 6, "present": 6}}
    excluded = {item["case_id"]: item["message"] for item in record["excluded"]}
    assert excluded.keys() == {"unlabelled", "broken"}
    assert "broken.nii.gz: not a readable NIfTI file" in excluded["broken"]
    assert all(message in stderr for message in excluded.values())


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss(cli_run):
    _, record, _ = cli_run
    losses = [epoch["val_loss"] for epoch in record["epochs"]]
    assert record["best_epoch"] == 1 + int(np.argmin(losses))
    kept = record["epochs"][record["best_epoch"] - 1]
    assert record["validation"]["balanced_accuracy"] == kept["val_balanced_accuracy"]
    if record["stopped_early"]:
        assert len(losses) == record["best_epoch"] + CONFIG.patience < CONFIG.epochs
    else:
        assert len(losses) == CONFIG.epochs


def test_two_runs_give_bit_identical_weights_head_and_verdict(cli_run, api_run):
    model_dir, record, _ = cli_run
    assert api_run.record["weights"]["final"]["sha256"] == record["weights"]["final"]["sha256"]
    for kind in ("weights", "head", "test_predictions"):
        assert file_sha256(api_run.paths[kind]) == file_sha256(model_dir / api_run.paths[kind].name)
    assert api_run.record["epochs"] == record["epochs"]
    assert api_run.record["split"] == record["split"]
    assert api_run.record["verdict"] == record["verdict"]


def test_the_test_patients_influence_nothing_before_the_final_evaluation(cli_run, cohort, tmp_path):
    """Flip every test label: epoch, weights, head and baselines stay; only the test figures move."""
    _, record, _ = cli_run
    flipped = {case_id: "absent" if int(case_id[3:]) % 2 else "present" for case_id, side in SIDES.items()
               if side == "test"}
    labels = with_split(cohort.parent / "labels.csv", cohort.parent / "flipped.csv", flipped)

    other = train_reusing_cache(cli_run, labels, tmp_path / "model").record

    assert other["epochs"] == record["epochs"] and other["best_epoch"] == record["best_epoch"]
    assert other["weights"]["final"] == record["weights"]["final"]
    assert other["outputs"]["head"]["sha256"] == record["outputs"]["head"]["sha256"]
    assert other["baseline"] == record["baseline"]
    assert other["validation"] == record["validation"]
    auc, flipped_auc = record["test"]["network"]["roc_auc"], other["test"]["network"]["roc_auc"]
    assert flipped_auc == pytest.approx(1 - auc) and not other["verdict"]["better_than_chance"]


def test_the_saved_classifier_regenerates_the_test_predictions_and_scores_new_cases(cli_run, cohort, tmp_path, capsys):
    model_dir, record, _ = cli_run
    with open(model_dir / "test_predictions.csv", newline="") as handle:
        reported = {row["case_id"]: [float(row["p_absent"]), float(row["p_present"])] for row in csv.DictReader(handle)}
    classifier = load_classifier(model_dir)
    for case_id, probabilities in reported.items():
        assert classifier.score(cohort.parent / f"{case_id}.nii.gz")[0].tolist() == probabilities

    scored = den_score(["--model", str(model_dir), "--cases", str(cohort), "-o", str(tmp_path / "scores.csv"), "-q"])
    assert scored == 1  # the corrupt case could not be scored; every other case is in the table

    with open(tmp_path / "scores.csv", newline="") as handle:
        table = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert len(table) == CASES + 2
    assert all([float(table[case_id]["p_absent"]), float(table[case_id]["p_present"])] == probabilities
               for case_id, probabilities in reported.items())
    assert "not a readable NIfTI file" in table["broken"]["problem"] and table["broken"]["p_absent"] == ""
    provenance = json.loads((tmp_path / "scores.csv.json").read_text())
    assert provenance["classifier"]["training_record_sha256"] == file_sha256(model_dir / "den_trained.json")
    assert provenance["classifier"]["head_sha256"] == record["outputs"]["head"]["sha256"]
    assert provenance["table"]["sha256"] == file_sha256(tmp_path / "scores.csv")
    capsys.readouterr()


def test_a_head_that_is_not_the_recorded_one_is_refused(cli_run, tmp_path):
    model_dir, _, _ = cli_run
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("den_trained.json", "den_trained.weights.h5", "den_head.npz"):
        shutil.copy(model_dir / name, copy / name)
    content = bytearray((copy / "den_head.npz").read_bytes())
    content[-40] ^= 0xFF
    (copy / "den_head.npz").write_bytes(bytes(content))
    from DENExtractorLib.errors import DENError

    with pytest.raises(DENError, match=r"den_head\.npz: missing, or not the file the training record names"):
        load_classifier(copy)


def test_the_model_card_reports_data_metrics_verdict_and_limitations(cli_run):
    model_dir, record, _ = cli_run
    card = (model_dir / "den_trained_card.md").read_text()
    assert record["outputs"]["card"]["sha256"] == file_sha256(model_dir / "den_trained_card.md")
    assert record["verdict"]["text"] in card
    assert "| side | patients | cases | cases absent | cases present |" in card
    assert "| test (scored once) | 12 | 12 | 6 | 6 |" in card
    auc = record["verdict"]["network"]["roc_auc"]
    bounds = (f"[{auc['interval'][0]:.3f}, {auc['interval'][1]:.3f}]" if auc["interval"]
              else f"[no interval: {auc['no_interval']}]")
    assert f"| trained network | {auc['value']:.3f} {bounds}" in card
    assert "## Calibration (test patients)" in card and "## Limitations" in card
    assert "Not for clinical decisions" in card
    assert "every case is a different patient, as stated with `--one-case-per-patient`" in card
    assert ("- This run's verdict rests on 12 test patients (12 cases). Every test patient has one label: labels are "
            "permuted between patients. The smallest p-value these patients can support is 0.0011") in card


def test_without_a_group_column_or_one_case_per_patient_nothing_is_called_better(cli_run, cohort, tmp_path, capsys):
    """The learnable cohort, its cases not stated to be different patients: the command line and the card say that
    every case was taken as its own patient, and the verdict makes no 'better' claim."""
    shutil.copytree(cli_run[0] / "cache", tmp_path / "model" / "cache")

    status = den_train(["--cases", str(cohort), "--label-column", "necrosis", "-o", str(tmp_path / "model"),
                        *SETTINGS, "--quiet"])

    stderr = capsys.readouterr().err
    record = json.loads((tmp_path / "model" / "den_trained.json").read_text())
    verdict = record["verdict"]
    assert status == 0 and verdict["text"] in stderr and UNKNOWN_PATIENTS in stderr
    assert verdict["against_chance"]["significant"] == cli_run[1]["verdict"]["against_chance"]["significant"]
    assert verdict["chance"] == NOT_CLAIMED and not verdict["better_than_chance"]
    assert verdict["baseline_comparison"] in (NOT_CLAIMED, "no evidence")
    card = (tmp_path / "model" / "den_trained_card.md").read_text()
    assert "No `group` column: every case is taken as its own patient, which nothing confirms" in card
    assert "`--one-case-per-patient` was not given: if a patient has several cases" in card


def test_trained_weights_load_with_den_extract_and_change_the_features(cli_run, cohort, tmp_path, capsys):
    model_dir, record, _ = cli_run
    case = cohort.parent / "syn001.nii.gz"
    weights = model_dir / "den_trained.weights.h5"
    assert den_extract([str(case), "--weights", str(weights), "-o", str(tmp_path / "trained"), "--no-png", "-q"]) == 0
    assert den_extract([str(case), "-o", str(tmp_path / "bundled"), "--no-png", "-q"]) == 0
    trained = np.load(tmp_path / "trained" / "syn001_den.npy")
    bundled = np.load(tmp_path / "bundled" / "syn001_den.npy")
    provenance = json.loads((tmp_path / "trained" / "syn001_den.json").read_text())
    assert trained.shape == bundled.shape == (32, 4096)
    rows = provenance["features"]["foreground_rows"]
    assert not np.allclose(trained[rows], bundled[rows], atol=1e-3)
    assert provenance["model"]["weights_sha256"] == record["weights"]["final"]["file_sha256"] == file_sha256(weights)
    assert provenance["model"]["id"] == record["model_id"]
    assert provenance["model"]["training_record_sha256"] == file_sha256(model_dir / "den_trained.json")
    bundled_model = json.loads((tmp_path / "bundled" / "syn001_den.json").read_text())["model"]
    assert model_provenance(bundled_model["id"], bundled_model["weights_sha256"], bundled_model["weights_source"]) == {
        "id": MODEL_ID, "weights_sha256": REFERENCE_WEIGHTS_SHA256, "weights_source": "bundled"}
    capsys.readouterr()


def test_the_provenance_chain_leads_back_to_the_labels_csv(cli_run, cohort, tmp_path):
    model_dir, record, _ = cli_run
    weights = model_dir / "den_trained.weights.h5"
    link = trained_model_link(weights)
    assert link == {"model_id": record["model_id"], "training_record": str(model_dir / "den_trained.json"),
                    "training_record_sha256": file_sha256(model_dir / "den_trained.json")}
    assert record["labels_csv"] == {"path": str(cohort), "sha256": file_sha256(cohort)}
    assert record["weights"]["base"] == {"model_id": MODEL_ID, "sha256": REFERENCE_WEIGHTS_SHA256, "source": "bundled",
                                         "file_sha256": None}
    assert record["hyperparameters"]["seed"] == record["seed"] == 1
    assert record["hyperparameters"]["learning_rate"] == 1e-3 and record["hyperparameters"]["train_layers"] == "dense"
    assert {"denextractor", "keras", "numpy", "scikit-learn"} <= record["software"].keys()
    assert {"tensorflow", "tensorflow-cpu"} & record["software"].keys()
    copy = tmp_path / "den_trained.weights.h5"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    copy.write_bytes(bytes(content))  # other bytes beside a copied record: not linked
    (tmp_path / "den_trained.json").write_bytes((model_dir / "den_trained.json").read_bytes())
    assert trained_model_link(copy) is None


def test_the_pictures_are_written_and_every_output_is_recorded(cli_run):
    model_dir, record, _ = cli_run
    with Image.open(model_dir / "den_trained.png") as picture:
        assert picture.format == "PNG" and picture.size == (1200, 450)
    with Image.open(model_dir / "den_trained_reliability.png") as picture:
        assert picture.format == "PNG" and picture.size == (600, 550)
    assert {kind: entry["file"] for kind, entry in record["outputs"].items()} == {
        "weights": "den_trained.weights.h5", "head": "den_head.npz", "png": "den_trained.png",
        "predictions": "val_predictions.csv", "test_predictions": "test_predictions.csv",
        "reliability": "den_trained_reliability.png", "card": "den_trained_card.md"}
    assert all(file_sha256(model_dir / entry["file"]) == entry["sha256"] for entry in record["outputs"].values())
    assert not [path.name for path in model_dir.iterdir() if ".partial" in path.name]


def test_all_layers_fine_tune_from_trained_weights(cli_run, tmp_path):
    """``--train-layers all`` from the trained weights: the convolutions change too and the start is linked."""
    model_dir, record, _ = cli_run
    cohort = write_labelled_cohort(tmp_path / "small", cases=6, shape=(20, 20, 12), seed=40)
    config = TrainingConfig(ExtractionSettings(weights=model_dir / "den_trained.weights.h5"), train_layers="all",
                            epochs=1, batch_size=8, val_fraction=0.34, test_fraction=0.0)

    result = train(cohort, "necrosis", tmp_path / "model", config)

    from DENExtractorLib.network.model import build_model

    model = build_model(result.paths["weights"])
    tuned = model.get_weights()
    model.load_weights(str(model_dir / "den_trained.weights.h5"))
    start = model.get_weights()
    assert result.record["weights"]["base"]["model_id"] == record["model_id"]
    assert result.record["weights"]["base"]["sha256"] == weights_sha256(start) == record["weights"]["final"]["sha256"]
    assert not np.array_equal(start[0], tuned[0])  # the first convolution's kernel learned
    assert weights_sha256(tuned) == result.record["weights"]["final"]["sha256"]
    assert result.record["test"] is None
    assert result.record["verdict"]["text"].startswith("No verdict: there are no test")
