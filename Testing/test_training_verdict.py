"""The verdict's statistics on the test patients, and den-train's verdict on cohorts with nothing to learn.

Fast part (numpy only): metrics equal scikit-learn's, intervals and tests behave on known predictions. Slow part
(real training, dense layers, few epochs, small generated cases): random labels never claim a win, and a label
that only identifies the patient is at chance once a group column keeps each patient's scans on one side.
"""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib.training import TrainingConfig, train
from DENExtractorLib.training.evaluation import classification_metrics, reliability_bins
from DENExtractorLib.training.synthetic_cohort import (
    write_grouped_cohort,
    write_labelled_cohort,
    write_permuted_labels,
)
from DENExtractorLib.training.verdict import judge


def two_class(scores: np.ndarray) -> np.ndarray:
    """(n, 2) probabilities from class-1 scores."""
    return np.stack([1 - scores, scores], axis=1)


def test_metrics_equal_scikit_learn_for_three_classes():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    generator = np.random.RandomState(0)
    truth = np.repeat([0, 1, 2], 7)
    probabilities = generator.dirichlet([1, 1, 1], size=21) + np.eye(3)[truth] * 0.3
    probabilities /= probabilities.sum(axis=1, keepdims=True)

    metrics = classification_metrics(probabilities, truth, 3)

    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, probabilities, multi_class="ovr", average="macro"))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, probabilities.argmax(1)))
    assert metrics["brier"] == pytest.approx(np.mean(np.sum((probabilities - np.eye(3)[truth]) ** 2, axis=1)))
    bins = reliability_bins(probabilities, truth)
    assert sum(entry["patients"] for entry in bins) == 21
    assert metrics["ece"] == pytest.approx(sum(b["patients"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / 21)


def test_a_constant_half_is_the_binary_brier_reference_and_a_confident_miss_scores_worse():
    truth = np.array([0, 1, 0, 1])
    assert classification_metrics(two_class(np.full(4, 0.5)), truth, 2)["brier"] == pytest.approx(0.5)
    assert classification_metrics(two_class(np.array([0.9, 0.1, 0.9, 0.1])), truth, 2)["brier"] > 0.5


def test_a_clear_separation_on_enough_patients_is_better_than_chance_with_an_interval_above_it():
    truth = np.array([0, 1] * 6)
    network = two_class(np.where(truth == 1, 0.8, 0.2) + np.linspace(-0.05, 0.05, 12))
    baseline = two_class(np.full(12, 0.5))  # ranks nothing: AUC 0.5

    verdict = judge(truth, network, baseline, [f"p{index}" for index in range(12)], "probe", seed=0)

    assert verdict["chance"] == "better than chance" and verdict["network"]["roc_auc"]["interval"][0] > 0.5
    assert verdict["better_than_baseline"] and verdict["against_baseline"]["interval"][0] > 0
    assert verdict["text"].startswith("Better than chance on 12 test patients")


def test_the_same_predictions_on_four_patients_are_too_few_to_tell():
    truth = np.array([0, 1, 0, 1])
    perfect = two_class(truth * 0.8 + 0.1)

    verdict = judge(truth, perfect, two_class(np.full(4, 0.5)), ["a", "b", "c", "d"], "probe", seed=0)

    assert verdict["chance"] == verdict["baseline_comparison"] == "too few patients to tell"
    assert verdict["smallest_reachable_p"] == pytest.approx(1 / 6)
    assert not verdict["better_than_chance"] and verdict["text"].startswith("Too few patients to tell")


def test_several_scans_of_one_patient_count_as_one_patient():
    """Three copies of each of 4 patients: still 4 patients, so still too few, however many cases."""
    truth = np.repeat([0, 1, 0, 1], 3)
    groups = list(np.repeat(["a", "b", "c", "d"], 3))

    verdict = judge(truth, two_class(truth * 0.8 + 0.1), two_class(np.full(12, 0.5)), groups, "probe", seed=0)

    assert verdict["test_patients"] == 4 and verdict["test_cases"] == 12
    assert verdict["chance"] == "too few patients to tell"


def test_identical_predictions_give_no_evidence_against_the_baseline():
    truth = np.array([0, 1] * 8)
    network = two_class(np.where(truth == 1, 0.7, 0.3))
    verdict = judge(truth, network, network.copy(), [f"p{index}" for index in range(16)], "probe", seed=0)
    assert verdict["chance"] == "better than chance"
    assert verdict["baseline_comparison"] == "no evidence" and verdict["against_baseline"]["difference"] == 0


@pytest.mark.slow
def test_random_labels_never_claim_a_win(tmp_path):
    """Three permutations of a learnable cohort's labels: no claim over chance or the baseline, for the network
    or the probe."""
    labels = write_labelled_cohort(tmp_path / "cohort", cases=30, shape=(32, 32, 16), seed=5, whole_lesion=True)
    for seed in (11, 12, 13):
        permuted = write_permuted_labels(labels, labels.parent / f"permuted{seed}.csv", seed)
        config = TrainingConfig(epochs=3, patience=2, learning_rate=3e-4, test_fraction=0.4, seed=seed)

        verdict = train(permuted, "necrosis", tmp_path / "model", config).record["verdict"]  # one cache for all

        assert verdict["test_patients"] == 12 and verdict["chance"] != "too few patients to tell"
        assert not verdict["better_than_chance"] and not verdict["better_than_baseline"], verdict["text"]
        assert not verdict["baseline_better_than_chance"], verdict["baseline_against_chance"]


@pytest.mark.slow
def test_a_label_that_only_identifies_the_patient_is_at_chance_on_held_out_patients(tmp_path):
    """Two scans per patient (the same tumour, shifted), a label per patient that the images do not predict: with
    the group column every patient's scans stay on one side, and network and probe are at chance on the test
    patients."""
    labels = write_grouped_cohort(tmp_path / "cohort", patients=20, scans=2, shape=(32, 32, 16), seed=3)
    config = TrainingConfig(epochs=3, patience=2, learning_rate=3e-4, test_fraction=0.4, seed=2)

    record = train(labels, "patient_class", tmp_path / "model", config).record

    verdict = record["verdict"]
    test_patients = {case_id[:4] for case_id in record["split"]["test"]}
    assert test_patients.isdisjoint(case_id[:4] for case_id in record["split"]["train"] + record["split"]["val"])
    assert record["split"]["groups"]["test"] == {"groups": 8, "cases": 16, "classes": {"absent": 8, "present": 8}}
    assert verdict["test_patients"] == 8 and verdict["chance"] == "no evidence", verdict["text"]
    assert not verdict["baseline_better_than_chance"], verdict["baseline_against_chance"]
