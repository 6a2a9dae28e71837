"""The verdict's statistics on the test patients, and den-train's verdict on cohorts with nothing to learn.

Fast part (numpy only, scores drawn, nothing trained): metrics equal scikit-learn's and the batched metrics equal
the single ones; permutations respect the patients (exact p-values equal brute force, Monte Carlo ones carry their
uncertainty); every guard counts patients; intervals are honest or absent; cases not known to be patients get no
"better" claim. The false-positive rate and power over many designs are in test_verdict_simulation.py. Slow part
(real training, dense layers, few epochs, small generated cases): random labels never claim a win, and a label
that only identifies the patient is at chance once a group column keeps each patient's scans on one side.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from DENExtractorLib.cli.train import main as den_train
from DENExtractorLib.training import TrainingConfig, train
from DENExtractorLib.training.batch_metrics import auc_differences_of_swaps, auc_of_labellings, weighted_metrics
from DENExtractorLib.training.evaluation import (
    balanced_accuracy,
    brier_score,
    classification_metrics,
    multiclass_auc,
    reliability_bins,
)
from DENExtractorLib.training.patient_design import PatientDesign
from DENExtractorLib.training.synthetic_cohort import (
    write_grouped_cohort,
    write_labelled_cohort,
    write_permuted_labels,
)
from DENExtractorLib.training.verdict import NOT_CLAIMED, TOO_FEW, UNKNOWN_PATIENTS, judge


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
    truth = np.array([0, 1] * 8)
    network = two_class(np.where(truth == 1, 0.7, 0.3) + np.linspace(-0.25, 0.25, 16))  # two pairs misordered
    baseline = two_class(np.full(16, 0.5))  # ranks nothing: AUC 0.5

    verdict = judge(truth, network, baseline, [f"p{index}" for index in range(16)], "probe", seed=0,
                    patients_known=True)

    assert 0.9 < verdict["network"]["roc_auc"]["value"] < 1
    assert verdict["chance"] == "better than chance" and verdict["network"]["roc_auc"]["interval"][0] > 0.5
    assert verdict["better_than_baseline"] and verdict["against_baseline"]["interval"][0] > 0
    assert verdict["text"].startswith("Better than chance on 16 test patients")


def test_a_perfect_ranking_is_better_than_chance_and_says_its_bootstrap_has_no_spread():
    truth = np.array([0, 1] * 6)
    network = two_class(np.where(truth == 1, 0.8, 0.2) + np.linspace(-0.05, 0.05, 12))

    verdict = judge(truth, network, two_class(np.full(12, 0.5)), [f"p{index}" for index in range(12)], "probe",
                    seed=0, patients_known=True)

    assert verdict["chance"] == "better than chance"
    assert verdict["against_chance"]["p_value"] == pytest.approx(1 / 924) and verdict["against_chance"]["exact"]
    assert verdict["network"]["roc_auc"]["interval"] is None  # not the degenerate [1.000, 1.000]
    assert "AUC 1.000 (no interval: every resample gives 1.000)" in verdict["text"]


def test_the_same_predictions_on_four_patients_are_too_few_to_tell():
    truth = np.array([0, 1, 0, 1])
    perfect = two_class(truth * 0.8 + 0.1)

    verdict = judge(truth, perfect, two_class(np.full(4, 0.5)), ["a", "b", "c", "d"], "probe", seed=0,
                    patients_known=True)

    assert verdict["chance"] == verdict["baseline_comparison"] == "too few patients to tell"
    assert verdict["smallest_reachable_p"] == pytest.approx(1 / 6)
    assert not verdict["better_than_chance"] and verdict["text"].startswith("Too few patients to tell")


def test_several_scans_of_one_patient_count_as_one_patient():
    """Three copies of each of 4 patients: still 4 patients, so still too few, however many cases."""
    truth = np.repeat([0, 1, 0, 1], 3)
    groups = list(np.repeat(["a", "b", "c", "d"], 3))

    verdict = judge(truth, two_class(truth * 0.8 + 0.1), two_class(np.full(12, 0.5)), groups, "probe", seed=0,
                    patients_known=True)

    assert verdict["test_patients"] == 4 and verdict["test_cases"] == 12
    assert verdict["chance"] == "too few patients to tell"


def test_identical_predictions_give_no_evidence_against_the_baseline():
    truth = np.array([0, 1] * 8)
    network = two_class(np.where(truth == 1, 0.7, 0.3))
    verdict = judge(truth, network, network.copy(), [f"p{index}" for index in range(16)], "probe", seed=0,
                    patients_known=True)
    assert verdict["chance"] == "better than chance"
    assert verdict["baseline_comparison"] == "no evidence" and verdict["against_baseline"]["difference"] == 0


def clustered_cohort(generator, patients: int, effect: float = 0.0, scans: tuple[int, int] = (1, 4)):
    """Patients of one label each (half per class), 1-3 cases each, scores sharing a patient-level part, plus
    ``effect`` times the label: (truth, network probabilities, baseline probabilities, groups)."""
    truth, scores, groups = [], [], []
    labels = generator.permutation(np.arange(patients) % 2)
    for patient, label in enumerate(labels):
        cases = int(generator.integers(*scans))
        level = generator.normal()
        truth += [label] * cases
        scores += list(level + effect * label + 0.3 * generator.normal(size=cases))
        groups += [f"p{patient:02d}"] * cases
    network = two_class(1 / (1 + np.exp(-np.asarray(scores))))
    return np.asarray(truth), network, two_class(generator.random(len(truth))), groups


@pytest.mark.parametrize("classes", [2, 3])
def test_the_batched_metrics_equal_the_single_ones(classes):
    generator = np.random.default_rng(classes)
    truth = generator.integers(0, classes, 17)
    truth[:classes] = np.arange(classes)
    network, baseline = generator.dirichlet(np.ones(classes), 17), generator.dirichlet(np.ones(classes), 17)
    network[3] = network[5]  # a tie

    labellings = np.asarray([generator.permutation(truth) for _ in range(20)])
    assert auc_of_labellings(network, labellings) == pytest.approx([multiclass_auc(network, row) for row in labellings])
    weights = generator.integers(0, 3, (20, 17)).astype(float)
    weights[:, :classes] += 1
    batched = weighted_metrics(network, truth, weights)
    for index, row in enumerate(weights):
        cases = np.repeat(np.arange(17), row.astype(int))
        assert batched["roc_auc"][index] == pytest.approx(multiclass_auc(network[cases], truth[cases]))
        assert batched["balanced_accuracy"][index] == pytest.approx(balanced_accuracy(network[cases], truth[cases]))
        assert batched["brier"][index] == pytest.approx(brier_score(network[cases], truth[cases]))
    swaps = generator.random((20, 17)) < 0.5
    differences = auc_differences_of_swaps(network, baseline, truth, swaps)
    for index, swap in enumerate(swaps[:, :, np.newaxis]):
        expected = multiclass_auc(np.where(swap, baseline, network), truth) - multiclass_auc(
            np.where(swap, network, baseline), truth)
        assert differences[index] == pytest.approx(expected)


def test_labels_move_with_their_patient_or_within_it_and_every_labelling_is_reached_once():
    truth = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0])
    groups = ["a", "a", "a", "b", "b", "c", "c", "d", "e", "e", "f"]  # a, b vary; c, d, e, f have one label each
    design = PatientDesign(truth, groups)

    every = np.concatenate(list(design.labelling_chunks(np.random.default_rng(0))))

    assert design.labellings == 3 * 2 * 6 == len(every) == len({tuple(row) for row in every})
    assert any((row == truth).all() for row in every)
    for row in every:
        assert row[:3].sum() == 2 and row[3:5].sum() == 1  # a, b: their own labels, shuffled among their cases
        assert row[5] == row[6] and row[8] == row[9]  # c, e: a patient's cases keep one label together
        assert sorted([row[5], row[7], row[8], row[10]]) == [0, 0, 1, 1]
    assert design.patient_labellings == 6 * 2 ** 2 and design.smallest_p == pytest.approx(1 / 24)


def test_an_exact_p_value_equals_brute_force_over_the_patients_labels():
    """12 patients of 1-3 cases, 6 per class: all 924 labellings of the patients, not 2000 shuffles of cases."""
    truth, network, baseline, groups = clustered_cohort(np.random.default_rng(4), 12, effect=0.8)
    verdict = judge(truth, network, baseline, groups, "probe", seed=0, patients_known=True)

    patients = sorted(set(groups))
    observed = multiclass_auc(network, truth)
    reached = 0
    for positive in combinations(patients, 6):
        labels = np.asarray([group in positive for group in groups], dtype=np.int64)
        reached += multiclass_auc(network, labels) >= observed - 1e-9
    assert verdict["against_chance"]["exact"] and verdict["against_chance"]["arrangements"] == 924
    assert verdict["against_chance"]["p_value"] == reached / 924


def test_a_monte_carlo_p_value_carries_an_interval_that_holds_the_exact_one():
    """20 patients, 10 per class: 184,756 labellings, too many to enumerate in the verdict, not for this test."""
    truth, network, baseline, groups = clustered_cohort(np.random.default_rng(7), 20, effect=0.9, scans=(1, 2))
    verdict = judge(truth, network, baseline, groups, "probe", seed=0, patients_known=True)

    every = np.zeros((184_756, 20), dtype=np.int64)
    for row, positive in enumerate(combinations(range(20), 10)):
        every[row, list(positive)] = 1
    exact = np.mean(auc_of_labellings(network, every) >= multiclass_auc(network, truth) - 1e-9)
    chance = verdict["against_chance"]
    assert not chance["exact"] and chance["arrangements"] >= 20_000 and chance["p_interval_level"] == 0.99
    assert chance["p_interval"][0] <= exact <= chance["p_interval"][1]
    assert chance["significant"] == (chance["p_interval"][1] < 0.05)
    assert f"over {chance['arrangements']:,} shuffles" in verdict["text"]


def test_two_patients_whose_scores_differ_only_between_them_are_too_few_to_tell():
    """The issue's example: labels vary within both patients, the network only tells the patients apart."""
    truth = np.r_[np.repeat([0, 1], [6, 3]), np.repeat([0, 1], [3, 6])]
    groups = ["A"] * 9 + ["B"] * 9
    network = two_class(np.r_[np.full(9, 0.3), np.full(9, 0.7)] + np.linspace(0, 0.01, 18))
    baseline = two_class(np.r_[np.full(9, 0.6), np.full(9, 0.4)] + np.linspace(0, 0.01, 18))

    verdict = judge(truth, network, baseline, groups, "probe", seed=0, patients_known=True)

    assert verdict["text"].startswith("Too few patients to tell: on 2 test patients")
    assert verdict["chance"] == verdict["baseline_chance"] == verdict["baseline_comparison"] == TOO_FEW
    assert verdict["smallest_reachable_p"] == pytest.approx(1 / 4)
    for entry in (verdict["network"]["roc_auc"], verdict["against_baseline"]):
        assert entry["interval"] is None and entry["no_interval"] == "too few patients"


def test_a_within_patient_effect_on_five_patients_beats_chance_but_is_too_few_to_compare():
    """Five patients whose labels vary, ranked right within each: the sign flips of five patients cannot reach
    p < 0.05 (2/32), so the comparison with the baseline is too few to tell, however many cases."""
    truth = np.tile([0, 0, 1, 1, 1], 5)
    groups = list(np.repeat([f"p{index}" for index in range(5)], 5))
    level = np.repeat(np.linspace(-1, 1, 5), 5)
    network = two_class(1 / (1 + np.exp(-(level + truth))))
    baseline = two_class(np.random.default_rng(0).random(25))

    verdict = judge(truth, network, baseline, groups, "probe", seed=0, patients_known=True)

    assert verdict["design"]["patients_with_varying_labels"] == 5
    assert verdict["chance"] == "better than chance", verdict["text"]
    assert verdict["baseline_comparison"] == TOO_FEW and verdict["smallest_reachable_paired_p"] == 2 / 32
    assert "too few patients to compare with the baseline" in verdict["text"]


def test_every_bootstrap_resample_holds_every_class():
    truth, _, _, groups = clustered_cohort(np.random.default_rng(1), 8)
    design = PatientDesign(truth, groups)
    weights = design.bootstrap_weights(4000, np.random.default_rng(0))
    for label in (0, 1):
        assert (weights[:, truth == label].sum(axis=1) > 0).all()
    # a patient's cases are drawn together: equal weights within every patient
    for patient in set(groups):
        cases = [index for index, group in enumerate(groups) if group == patient]
        assert (weights[:, cases] == weights[:, cases[:1]]).all()


def test_without_known_patients_nothing_is_called_better():
    truth = np.array([0, 1] * 8)
    network = two_class(np.where(truth == 1, 0.7, 0.3) + np.linspace(-0.25, 0.25, 16))

    verdict = judge(truth, network, two_class(np.full(16, 0.5)), [f"c{index}" for index in range(16)], "probe",
                    seed=0, patients_known=False)

    assert verdict["against_chance"]["significant"]  # the tests alone would claim it
    assert verdict["chance"] == verdict["baseline_comparison"] == NOT_CLAIMED
    assert not verdict["better_than_chance"] and not verdict["better_than_baseline"]
    assert verdict["text"].startswith("No claim of better than chance") and verdict["text"].endswith(UNKNOWN_PATIENTS)


def test_a_planted_effect_on_24_patients_is_better_than_chance():
    truth, network, baseline, groups = clustered_cohort(np.random.default_rng(2), 24, effect=3.0)

    verdict = judge(truth, network, baseline, groups, "probe", seed=0, patients_known=True)

    assert verdict["test_patients"] == 24 and verdict["better_than_chance"], verdict["text"]
    assert not verdict["baseline_better_than_chance"]


def test_one_case_per_patient_is_refused_when_a_group_has_several_cases(tmp_path, capsys):
    labels = write_grouped_cohort(tmp_path / "cohort", patients=4, scans=2, shape=(16, 16, 8), seed=3)

    status = den_train(["--cases", str(labels), "--label-column", "patient_class", "-o", str(tmp_path / "model"),
                        "--one-case-per-patient"])

    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1, error
    assert str(labels) in error and "--one-case-per-patient, but group 'pt00' has 2 cases" in error
    assert not (tmp_path / "model").exists()


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
