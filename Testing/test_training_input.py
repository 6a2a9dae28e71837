"""den-train's input side, before any network: the labelled CSV's faults, the patient split, the slice cache and
the patient-level metrics. Nothing here imports TensorFlow."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib import load_segmentation
from DENExtractorLib.cli.train import main
from DENExtractorLib.errors import DENError
from DENExtractorLib.extraction.preprocessing import preprocess
from DENExtractorLib.settings import ExtractionSettings
from DENExtractorLib.training.cache import cache_cases
from DENExtractorLib.training.data import class_weights, slice_set
from DENExtractorLib.training.evaluation import (
    classification_metrics,
    patient_probabilities,
)
from DENExtractorLib.training.labelled import read_labelled_cohort
from DENExtractorLib.training.split import split_patients
from helpers import REPO_ROOT, save_nifti


def tumour(path: Path, size: int = 4, value: int = 1) -> Path:
    """A small label map with a cube of ``value``."""
    data = np.zeros((16, 16, 8), dtype=np.uint8)
    data[4 : 4 + size, 4 : 4 + size, 2:6] = value
    return save_nifti(path, data)


def cohort_csv(folder: Path, rows: list[tuple], header=("case_id", "segmentation", "grade")) -> Path:
    """Write a cases CSV whose cases are small label maps (written when the cell names a .nii.gz)."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row[1].endswith(".nii.gz") and not (folder / row[1]).exists():
            tumour(folder / row[1], size=3 + len(row[0]) % 5)
    path = folder / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def graded(count: int, labels=("low", "high")) -> list[tuple]:
    """``count`` rows with alternating labels."""
    return [(f"p{index}", f"p{index}.nii.gz", labels[index % len(labels)]) for index in range(count)]


def refused_by_den_train(csv_path: Path, fault: str, tmp_path, capsys, column: str = "grade") -> None:
    """den-train exits 2 with exactly one error line naming the CSV and the fault, and writes nothing."""
    out = tmp_path / "model"
    status = main(["--cases", str(csv_path), "--label-column", column, "-o", str(out), "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and "den-train: error:" in lines[0], lines
    assert str(csv_path) in lines[0] and fault in lines[0], lines[0]
    assert not out.exists()


def test_missing_label_column_names_the_columns_there(tmp_path, capsys):
    path = cohort_csv(tmp_path / "c", graded(4))
    refused_by_den_train(path, "no label column 'idh'; the other columns are 'grade'", tmp_path, capsys, column="idh")


def test_fewer_than_two_classes(tmp_path, capsys):
    path = cohort_csv(tmp_path / "c", graded(4, labels=("high",)))
    refused_by_den_train(path, "needs at least two classes to train on; found only ['high']", tmp_path, capsys)


def test_a_class_with_a_single_patient(tmp_path, capsys):
    path = cohort_csv(tmp_path / "c", [*graded(4), ("q", "q.nii.gz", "medium")])
    refused_by_den_train(path, "too few in 'medium' (1)", tmp_path, capsys)


def test_rows_without_label_and_rows_that_cannot_run_are_excluded_and_listed(tmp_path):
    rows = [*graded(4), ("nolabel", "nolabel.nii.gz", ""), ("gone", "gone.nii.gz", "low")]
    path = cohort_csv(tmp_path / "c", rows)
    (tmp_path / "c" / "gone.nii.gz").unlink()

    cohort = read_labelled_cohort(path, "Grade")  # the column name's case does not matter

    assert [case.case_id for case in cohort.cases] == ["p0", "p1", "p2", "p3"]
    assert cohort.classes == ("high", "low")
    excluded = {item.case_id: item.message for item in cohort.excluded}
    assert excluded.keys() == {"nolabel", "gone"}
    assert "row 6: case 'nolabel' has no value in column 'grade': excluded" in excluded["nolabel"]
    assert "segmentation file not found" in excluded["gone"]


def test_unlabelled_rows_leaving_a_class_too_small_are_refused(tmp_path, capsys):
    rows = [("a", "a.nii.gz", "low"), ("b", "b.nii.gz", "low"), ("c", "c.nii.gz", "high"), ("d", "d.nii.gz", "")]
    refused_by_den_train(cohort_csv(tmp_path / "c", rows), "too few in 'high' (1)", tmp_path, capsys)


def test_numeric_classes_sort_by_value():
    from DENExtractorLib.training.labelled import sorted_classes

    assert sorted_classes(["10", "2", "1"]) == ("1", "2", "10")
    assert sorted_classes(["b", "a", "10"]) == ("10", "a", "b")


def test_mixed_image_mode_is_refused(tmp_path, capsys):
    folder = tmp_path / "c"
    rows = [(case_id, seg, "", label) for case_id, seg, label in graded(4)]
    path = cohort_csv(folder, rows, header=("case_id", "segmentation", "image", "grade"))
    tumour(folder / "mri.nii.gz", size=12, value=7)
    text = path.read_text().replace("p0.nii.gz,", "p0.nii.gz,mri.nii.gz", 1)
    path.write_text(text)
    refused_by_den_train(path, "image mode needs an image for every case; none for p1, p2, p3", tmp_path, capsys)


def test_stratified_split_is_by_patient_seeded_and_keeps_every_class_on_every_side(tmp_path):
    cohort = read_labelled_cohort(cohort_csv(tmp_path / "c", graded(40, labels=("a", "b", "c", "c"))), "grade")

    split = split_patients(cohort, 0.2, 0.3, seed=3)

    sides = [set(split.train), set(split.val), set(split.test)]
    assert all(first.isdisjoint(second) for index, first in enumerate(sides) for second in sides[index + 1 :])
    assert set().union(*sides) == {case.case_id for case in cohort.cases}
    label = {case.case_id: case.label for case in cohort.cases}
    assert sorted(label[p] for p in split.test) == ["a"] * 3 + ["b"] * 3 + ["c"] * 6  # round(0.3 * 10), 0.3 * 20
    assert sorted(label[p] for p in split.val) == ["a"] * 2 + ["b"] * 2 + ["c"] * 4
    assert split_patients(cohort, 0.2, 0.3, seed=3) == split
    assert split_patients(cohort, 0.2, 0.3, seed=4).test != split.test
    assert split_patients(cohort, 0.2, 0.0, seed=3).test == ()


def grouped_rows(patients: int, cases_each: int) -> list[tuple]:
    """Rows of ``patients`` groups of ``cases_each`` cases; labels alternate by patient."""
    return [(f"p{patient}c{case}", f"p{patient}c{case}.nii.gz", ("low", "high")[patient % 2], f"patient{patient}")
            for patient in range(patients) for case in range(cases_each)]


def test_a_group_column_keeps_every_patients_cases_on_one_side(tmp_path):
    rows = grouped_rows(10, 3)
    path = cohort_csv(tmp_path / "c", rows, ("case_id", "segmentation", "grade", "group"))
    cohort = read_labelled_cohort(path, "grade")

    for seed in range(5):
        split = split_patients(cohort, 0.2, 0.2, seed=seed)
        group_of = {case.case_id: case.patient for case in cohort.cases}
        sides = [{group_of[case] for case in side} for side in (split.train, split.val, split.test)]
        assert sides[0].isdisjoint(sides[1]) and sides[0].isdisjoint(sides[2]) and sides[1].isdisjoint(sides[2])
        assert [len(side) for side in sides] == [6, 2, 2] and "grouped by the 'group' column" in split.method
        assert len(split.train) == 18 and len(split.test) == 6


def test_a_split_column_fixes_each_patient_side(tmp_path):
    sides = {"p0": "val", "p1": "val", "p2": "Test", "p3": "test"}
    rows = [(case_id, seg, label, sides.get(case_id, "Train")) for case_id, seg, label in graded(8)]
    path = cohort_csv(tmp_path / "c", rows, ("case_id", "segmentation", "grade", "split"))
    cohort = read_labelled_cohort(path, "grade")

    split = split_patients(cohort, 0.5, 0.2, seed=0)

    assert split.val == ("p0", "p1") and split.test == ("p2", "p3") and split.train == ("p4", "p5", "p6", "p7")
    assert split.method == "the CSV's split column"


def test_a_split_column_that_starves_a_side_splits_a_group_or_has_an_unknown_value_is_refused(tmp_path):
    rows = [(case_id, seg, label, "val" if case_id == "p0" else "train") for case_id, seg, label in graded(4)]
    path = cohort_csv(tmp_path / "c", rows, ("case_id", "segmentation", "grade", "split"))
    with pytest.raises(DENError, match=r"the validation patients .* have no case of class\(es\) 'high'"):
        split_patients(read_labelled_cohort(path, "grade"), 0.5, 0.2, seed=0)
    path.write_text(path.read_text().replace(",val", ",holdout"))
    with pytest.raises(DENError, match="row 2: split 'holdout' is not one of train, val, test"):
        read_labelled_cohort(path, "grade")
    rows = [(*row, "val" if row[0] == "p0c1" else "train") for row in grouped_rows(4, 2)]
    path = cohort_csv(tmp_path / "g", rows, ("case_id", "segmentation", "grade", "group", "split"))
    with pytest.raises(DENError, match="group 'patient0' has cases in split 'train' and 'val'"):
        read_labelled_cohort(path, "grade")


def test_cache_stores_extraction_preprocessing_and_reports_a_case_that_fails_to_load(tmp_path):
    path = cohort_csv(tmp_path / "c", graded(4))
    (tmp_path / "c" / "p3.nii.gz").write_bytes(b"not a nifti at all")
    cohort = read_labelled_cohort(path, "grade")
    statuses = []

    cached, failures = cache_cases(cohort, tmp_path / "model", ExtractionSettings(), on_case=lambda *s: statuses.append(s))

    assert [case.case_id for case in cached] == ["p0", "p1", "p2"]
    assert [failure.case_id for failure in failures] == ["p3"]
    assert "p3.nii.gz: not a readable NIfTI file" in failures[0].message and failures[0].message.endswith("excluded")
    stack = preprocess(load_segmentation(tmp_path / "c" / "p1.nii.gz"))
    rows = np.arange(len(stack.foreground_rows))[::-1]
    assert np.array_equal(cached[1].network_inputs(rows), stack.batch(0, len(rows))[rows])
    with pytest.raises(DENError, match="too few in 'high' \\(1\\)"):
        cohort.without(failures)
    _ = cache_cases(cohort, tmp_path / "model", ExtractionSettings(), on_case=lambda *s: statuses.append(s))
    assert [status for _, status in statuses[4:7]] == ["reused"] * 3
    tumour(tmp_path / "c" / "p0.nii.gz", size=6)  # a changed file is preprocessed again
    cache_cases(cohort, tmp_path / "model", ExtractionSettings(), on_case=lambda *s: statuses.append(s))
    assert statuses[8] == ("p0", "cached")


def test_slices_carry_their_patient_label_and_classes_are_balanced(tmp_path):
    path = cohort_csv(tmp_path / "c", graded(4))
    cached, _ = cache_cases(read_labelled_cohort(path, "grade"), tmp_path / "model", ExtractionSettings())
    slices = slice_set(cached)

    assert len(slices) == sum(case.slices for case in cached)
    assert np.array_equal(slices.labels, np.repeat([case.label_index for case in cached], [c.slices for c in cached]))
    weights = class_weights(slices.labels, 2)
    counts = np.bincount(slices.labels)
    assert weights[0] * counts[0] == pytest.approx(weights[1] * counts[1])


def test_patient_metrics_average_slice_probabilities_and_match_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    slice_probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9]])
    patient = np.array([0, 0, 1, 1, 2, 3])
    truth = np.array([0, 1, 0, 1])

    probabilities = patient_probabilities(slice_probabilities, patient, 4)
    metrics = classification_metrics(probabilities, truth, 2)

    assert np.allclose(probabilities[:, 1], [0.45, 0.55, 0.55, 0.9])
    assert metrics["confusion_matrix"] == [[1, 1], [0, 2]]
    assert metrics["accuracy"] == 0.75
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, probabilities.argmax(1)))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, probabilities[:, 1]))


@pytest.mark.parametrize("settings", [ExtractionSettings(mode="oriented", plane="coronal"), ExtractionSettings(labels=(1,))],
                         ids=["oriented-coronal", "labels-1"])
def test_cache_follows_the_extraction_settings_and_image_mode(tmp_path, settings):
    folder = tmp_path / "c"
    path = cohort_csv(folder, [(case_id, seg, "", label) for case_id, seg, label in graded(4)],
                      header=("case_id", "segmentation", "image", "grade"))
    for index in range(4):
        data = np.zeros((16, 16, 8), dtype=np.uint8)
        data[4:12, 5:9, 2:6] = 1
        data[6:9, 6:8, 3:5] = 2
        save_nifti(folder / f"p{index}.nii.gz", data, np.diag([1.0, 2.0, 3.0, 1.0]))
        mri = np.random.RandomState(index).normal(100, 20, size=(16, 16, 8)).astype(np.float32)
        save_nifti(folder / f"mri{index}.nii.gz", mri, np.diag([1.0, 2.0, 3.0, 1.0]))
    text = path.read_text()
    for index in range(4):
        text = text.replace(f"p{index}.nii.gz,,", f"p{index}.nii.gz,mri{index}.nii.gz,")
    path.write_text(text)
    cohort = read_labelled_cohort(path, "grade")

    cached, failures = cache_cases(cohort, tmp_path / "model", settings)

    from DENExtractorLib import load_image
    from DENExtractorLib.volume import select_labels

    assert cohort.image_mode and not failures
    segmentation = load_segmentation(folder / "p2.nii.gz")
    if settings.labels is not None:
        segmentation = select_labels(segmentation, settings.labels)
    stack = preprocess(segmentation, load_image(folder / "mri2.nii.gz"), settings.mode, settings.effective_plane)
    rows = np.arange(len(stack.foreground_rows))
    assert cached[2].slices == len(rows)
    assert np.array_equal(cached[2].network_inputs(rows), stack.batch(0, len(rows)))


def test_a_plane_in_reference_mode_is_refused_like_extraction(tmp_path, capsys):
    path = cohort_csv(tmp_path / "c", graded(4))
    status = main(["--cases", str(path), "--label-column", "grade", "-o", str(tmp_path / "m"), "--plane", "coronal"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1
    assert "den-train: error: plane: a plane applies to oriented mode" in lines[0]


@pytest.mark.slow
def test_bad_input_is_refused_before_tensorflow_loads(tmp_path):
    path = cohort_csv(tmp_path / "c", graded(4, labels=("high",)))
    code = ("import sys\nfrom DENExtractorLib.cli.train import main\n"
            f"status = main(['--cases', {str(path)!r}, '--label-column', 'grade', '-o', {str(tmp_path / 'm')!r}])\n"
            "print('tensorflow' in sys.modules, status)\n")
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert done.stdout.split() == ["False", "2"]
    assert done.stderr.strip().splitlines() == [
        f"den-train: error: {path}: column 'grade' needs at least two classes to train on; found only ['high']"]


@pytest.mark.parametrize("option, value, fault", [
    ("--val-fraction", "1.5", "val_fraction: 1.5 must lie between 0 and 1"),
    ("--epochs", "0", "epochs: 0 must be at least 1"),
    ("--learning-rate", "-1", "learning_rate: -1 must be positive"),
    ("--weights", "missing.weights.h5", "missing.weights.h5: no such weights file"),
])
def test_bad_options_get_one_line(tmp_path, capsys, option, value, fault):
    path = cohort_csv(tmp_path / "c", graded(4))
    status = main(["--cases", str(path), "--label-column", "grade", "-o", str(tmp_path / "m"), option, value])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("den-train: error: ") and fault in lines[0], lines


def test_a_measurement_column_is_refused_in_one_short_line(tmp_path, capsys):
    rows = [(f"p{index}", f"p{index}.nii.gz", str(300 + 17 * index)) for index in range(40)]
    refused_by_den_train(cohort_csv(tmp_path / "c", rows), "'300' (1), '317' (1), '334' (1), '351' (1), '368' (1) and "
                         "35 more classes (is 'grade' a measurement, not a class?)", tmp_path, capsys)


def test_class_numbers_follow_the_classes_left_when_a_whole_class_fails_to_load(tmp_path):
    from DENExtractorLib.training.cache import CachedCase
    from DENExtractorLib.training.labelled import (
        Exclusion,
        LabelledCase,
        LabelledCohort,
    )
    from DENExtractorLib.training.trainer import _with_final_classes

    cases = tuple(LabelledCase(f"p{index}", tmp_path / f"p{index}.nii.gz", None, label, None)
                  for index, label in enumerate(["a", "a", "b", "b", "c", "c"]))
    cohort = LabelledCohort(tmp_path / "labels.csv", "0" * 64, "grade", cases, ("a", "b", "c"), (), False)
    cached = [CachedCase(case.case_id, cohort.class_index(case), tmp_path / "x.npy", 1.0, 1)
              for case in cases if case.label != "b"]
    remaining = cohort.without([Exclusion("p2", "unreadable: excluded"), Exclusion("p3", "unreadable: excluded")])
    assert remaining.classes == ("a", "c")
    assert [entry.label_index for entry in _with_final_classes(cached, remaining)] == [0, 0, 1, 1]
