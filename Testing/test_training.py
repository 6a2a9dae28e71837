"""den-train end to end on a generated labelled cohort (necrotic core large vs absent, 10 tiny cases): it learns,
two runs give bit-identical weights, the weights load with den-extract and change the features, and every output
leads back to the labels CSV."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from DENExtractorLib.cli.extract import main as den_extract
from DENExtractorLib.hashing import file_sha256
from DENExtractorLib.network.bundled import (
    MODEL_ID,
    REFERENCE_WEIGHTS_SHA256,
    weights_sha256,
)
from DENExtractorLib.network.trained_record import model_provenance, trained_model_link
from DENExtractorLib.settings import ExtractionSettings
from DENExtractorLib.training import TrainingConfig, train
from DENExtractorLib.training.synthetic_cohort import write_labelled_cohort
from helpers import REPO_ROOT
from PIL import Image

SETTINGS = ["--epochs", "6", "--patience", "2", "--learning-rate", "3e-4", "--val-fraction", "0.34", "--seed", "3"]
CONFIG = TrainingConfig(epochs=6, patience=2, learning_rate=3e-4, val_fraction=0.34, seed=3)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """10 labelled synthetic cases, plus a row without a label and a case whose file is corrupt."""
    folder = tmp_path_factory.mktemp("labelled")
    path = write_labelled_cohort(folder, cases=10)
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not gzip data")
    with open(path, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["unlabelled", "syn000.nii.gz", ""], ["broken", "broken.nii.gz", "present"]])
    return path


@pytest.fixture(scope="session")
def cli_run(cohort, tmp_path_factory):
    """``den-train`` as a user runs it, in its own process: (model dir, training record, stderr)."""
    model_dir = tmp_path_factory.mktemp("cli") / "model"
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    finished = subprocess.run(
        [sys.executable, "-m", "DENExtractorLib.cli.train", "--cases", str(cohort), "--label-column", "necrosis",
         "-o", str(model_dir), *SETTINGS],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    return model_dir, json.loads((model_dir / "den_trained.json").read_text()), finished.stderr


@pytest.fixture(scope="session")
def api_run(cohort, tmp_path_factory):
    """The same training through the Python API, in this process: its TrainingResult."""
    return train(cohort, "necrosis", tmp_path_factory.mktemp("api") / "model", CONFIG)


def test_training_learns_the_label_on_unseen_patients(cli_run):
    model_dir, record, stderr = cli_run
    validation = record["validation"]
    assert validation["balanced_accuracy"] > 0.5 and validation["roc_auc"] > 0.5
    assert validation["patients"] == 4 == sum(map(sum, validation["confusion_matrix"]))
    with open(model_dir / "val_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case_id"] for row in rows] == record["split"]["val"]
    assert np.mean([row["correct"] == "1" for row in rows]) == validation["accuracy"]
    assert all(float(row["p_absent"]) + float(row["p_present"]) == pytest.approx(1, abs=1e-5) for row in rows)
    assert record["verdict"]["text"] in stderr


def test_patients_are_split_never_slices_and_failures_are_listed(cli_run):
    _, record, stderr = cli_run
    train_ids, val_ids = set(record["split"]["train"]), set(record["split"]["val"])
    assert train_ids.isdisjoint(val_ids) and train_ids | val_ids == {f"syn{index:03d}" for index in range(10)}
    excluded = {item["case_id"]: item["message"] for item in record["excluded"]}
    assert excluded.keys() == {"unlabelled", "broken"}
    assert "broken.nii.gz: not a readable NIfTI file" in excluded["broken"]
    assert all(message in stderr for message in excluded.values())


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss(cli_run):
    _, record, _ = cli_run
    losses = [epoch["val_loss"] for epoch in record["epochs"]]
    assert record["best_epoch"] == 1 + int(np.argmin(losses))
    assert record["validation"]["balanced_accuracy"] == record["epochs"][record["best_epoch"] - 1]["val_balanced_accuracy"]
    if record["stopped_early"]:
        assert len(losses) == record["best_epoch"] + CONFIG.patience < CONFIG.epochs
    else:
        assert len(losses) == CONFIG.epochs


def test_two_runs_give_bit_identical_weights(cli_run, api_run):
    model_dir, record, _ = cli_run
    assert api_run.record["weights"]["final"]["sha256"] == record["weights"]["final"]["sha256"]
    assert file_sha256(api_run.paths["weights"]) == file_sha256(model_dir / "den_trained.weights.h5")
    assert api_run.record["epochs"] == record["epochs"]
    assert api_run.record["split"] == record["split"]


def test_the_baseline_is_reported_beside_the_network_on_the_same_patients(cli_run):
    _, record, _ = cli_run
    for weights in ("base_weights", "trained_weights"):
        probe = record["baseline"][weights]
        assert probe["validation_split"]["patients"] == record["validation"]["patients"]
        assert probe["cross_validation"]["patients"] == 10 and probe["cross_validation"]["folds"] == 5
    beat = record["validation"]["balanced_accuracy"] > record["baseline"]["base_weights"]["validation_split"]["balanced_accuracy"]
    assert record["verdict"]["beat_baseline"] == beat
    assert record["verdict"]["text"].startswith("Training beat" if beat else "Training did NOT beat")


def test_trained_weights_load_with_den_extract_and_change_the_features(cli_run, cohort, tmp_path, capsys):
    model_dir, record, _ = cli_run
    case = cohort.parent / "syn001.nii.gz"
    weights = model_dir / "den_trained.weights.h5"
    assert den_extract([str(case), "--weights", str(weights), "-o", str(tmp_path / "trained"), "--no-png", "-q"]) == 0
    assert den_extract([str(case), "-o", str(tmp_path / "bundled"), "--no-png", "-q"]) == 0
    trained = np.load(tmp_path / "trained" / "syn001_den.npy")
    bundled = np.load(tmp_path / "bundled" / "syn001_den.npy")
    provenance = json.loads((tmp_path / "trained" / "syn001_den.json").read_text())
    assert trained.shape == bundled.shape == (48, 4096)
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
    assert record["hyperparameters"]["seed"] == record["seed"] == 3
    assert record["hyperparameters"]["learning_rate"] == 3e-4 and record["hyperparameters"]["train_layers"] == "dense"
    assert {"denextractor", "keras", "numpy", "scikit-learn"} <= record["software"].keys()
    assert {"tensorflow", "tensorflow-cpu"} & record["software"].keys()
    copy = tmp_path / "den_trained.weights.h5"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    copy.write_bytes(bytes(content))  # other bytes beside a copied record: not linked
    (tmp_path / "den_trained.json").write_bytes((model_dir / "den_trained.json").read_bytes())
    assert trained_model_link(copy) is None


def test_the_learning_curves_picture_is_written(cli_run):
    model_dir, record, _ = cli_run
    with Image.open(model_dir / "den_trained.png") as picture:
        assert picture.format == "PNG" and picture.size == (1200, 450)
    assert {kind: entry["file"] for kind, entry in record["outputs"].items()} == {
        "weights": "den_trained.weights.h5", "png": "den_trained.png", "predictions": "val_predictions.csv"}
    assert all(file_sha256(model_dir / entry["file"]) == entry["sha256"] for entry in record["outputs"].values())
    assert not [path.name for path in model_dir.iterdir() if ".partial" in path.name]


def test_all_layers_fine_tune_from_trained_weights(cli_run, tmp_path):
    """``--train-layers all`` from the trained weights: the convolutions change too and the start is linked."""
    model_dir, record, _ = cli_run
    cohort = write_labelled_cohort(tmp_path / "small", cases=4, shape=(20, 20, 12), seed=40)
    config = TrainingConfig(ExtractionSettings(weights=model_dir / "den_trained.weights.h5"), train_layers="all", epochs=1,
                            batch_size=8, val_fraction=0.5)

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
