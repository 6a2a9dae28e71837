"""Splitting patients (never slices, never one patient's cases) into training, validation and test.

Slices of one patient on both sides would let the network recognise the patient instead of the label and inflate
every metric, so the unit of the split is the group (the CSV's ``group`` column, else the case). Training patients
fit the weights; validation patients choose the epoch (early stopping); test patients are scored once, at the end,
and only their scores are judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DENError
from .labelled import LabelledCohort

SIDES = ("train", "val", "test")


@dataclass(frozen=True)
class PatientSplit:
    """The case ids on each side and how they were chosen (``test`` is empty when no test set was asked for)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    method: str


def split_patients(cohort: LabelledCohort, val_fraction: float, test_fraction: float, seed: int) -> PatientSplit:
    """Split the cohort by group: by its ``split`` column if it has one, else seeded and stratified by class.

    Stratified: groups are labelled by their cases' most common label (ties: the first class); within each class
    (groups in id order, shuffled by ``seed``) ``round(test_fraction * n)`` groups go to test and
    ``round(val_fraction * n)`` to validation, at least one each (none for test when ``test_fraction`` is 0) and
    at least one left for training. Raises :class:`DENError` if a side lacks a class.
    """
    if cohort.split_from_column:
        sides = {side: tuple(case.case_id for case in cohort.cases if case.split == side) for side in SIDES}
        split = PatientSplit(sides["train"], sides["val"], sides["test"], "the CSV's split column")
    else:
        split = _stratified(cohort, val_fraction, test_fraction, seed)
    _check_every_class_on_every_side(cohort, split)
    return split


def group_labels(cohort: LabelledCohort) -> dict[str, str]:
    """Each group's label: the most common label of its cases (ties: the first class in index order)."""
    counts: dict[str, dict[str, int]] = {}
    for case in cohort.cases:
        group = counts.setdefault(case.patient, {})
        group[case.label] = group.get(case.label, 0) + 1
    return {group: max(cohort.classes, key=lambda label: (found.get(label, 0), -cohort.classes.index(label)))
            for group, found in counts.items()}


def _stratified(cohort: LabelledCohort, val_fraction: float, test_fraction: float, seed: int) -> PatientSplit:
    """Seeded, class-stratified split of the groups."""
    generator = np.random.RandomState(seed)
    label_of = group_labels(cohort)
    side_of: dict[str, str] = {}
    for label in cohort.classes:
        groups = sorted(group for group, found in label_of.items() if found == label)
        order = [groups[index] for index in generator.permutation(len(groups))]
        test = _count(test_fraction, len(groups), 0) if test_fraction > 0 else 0
        val = _count(val_fraction, len(groups), test)
        side_of.update(dict.fromkeys(order[:test], "test"))
        side_of.update(dict.fromkeys(order[test:test + val], "val"))
        side_of.update(dict.fromkeys(order[test + val:], "train"))
    sides = {side: tuple(sorted(case.case_id for case in cohort.cases if side_of[case.patient] == side))
             for side in SIDES}
    grouped = ", grouped by the 'group' column" if any(case.group for case in cohort.cases) else ""
    return PatientSplit(sides["train"], sides["val"], sides["test"],
                        f"stratified by class{grouped}, seed {seed}, validation fraction {val_fraction:g}, "
                        f"test fraction {test_fraction:g}")


def _count(fraction: float, groups: int, taken: int) -> int:
    """Groups for one held-out side: ``round(fraction * groups)``, at least one, leaving one for training."""
    return max(0, min(groups - taken - 1, max(1, round(fraction * groups))))


def _check_every_class_on_every_side(cohort: LabelledCohort, split: PatientSplit) -> None:
    """Every class among the training, the validation and (when there is a test set) the test patients."""
    label_of = {case.case_id: case.label for case in cohort.cases}
    named = (("training", split.train), ("validation", split.val), ("test", split.test))
    for side, cases in named[:3] if split.test else named[:2]:
        missing = sorted(set(cohort.classes) - {label_of[case] for case in cases}, key=cohort.classes.index)
        if missing:
            raise DENError(cohort.source, f"the {side} patients ({split.method}) have no case of class(es) "
                                          f"{', '.join(map(repr, missing))}")
