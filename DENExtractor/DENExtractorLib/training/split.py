"""Splitting patients (never slices) into training and validation: seeded and stratified, or from the CSV.

Slices of one patient on both sides would let the network recognise the patient instead of the label and inflate
every metric, so the unit of the split is the patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DENError
from .labelled import LabelledCohort


@dataclass(frozen=True)
class PatientSplit:
    """The patient ids on each side and how they were chosen."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    method: str


def split_patients(cohort: LabelledCohort, val_fraction: float, seed: int) -> PatientSplit:
    """Split the cohort's patients: by its ``split`` column if it has one, else seeded and stratified by class.

    Stratified: within each class (patients in id order, then shuffled by ``seed``), ``round(val_fraction * n)``
    patients go to validation, at least one and never all. Raises :class:`DENError` if a side lacks a class.
    """
    if cohort.split_from_column:
        train = tuple(case.case_id for case in cohort.cases if case.split == "train")
        val = tuple(case.case_id for case in cohort.cases if case.split == "val")
        split = PatientSplit(train, val, "the CSV's split column")
    else:
        split = _stratified(cohort, val_fraction, seed)
    _check_every_class_on_both_sides(cohort, split)
    return split


def _stratified(cohort: LabelledCohort, val_fraction: float, seed: int) -> PatientSplit:
    """Seeded, class-stratified patient split."""
    generator = np.random.RandomState(seed)
    train, val = [], []
    for label in cohort.classes:
        patients = sorted(case.case_id for case in cohort.cases if case.label == label)
        order = [patients[index] for index in generator.permutation(len(patients))]
        count = min(len(patients) - 1, max(1, round(val_fraction * len(patients))))
        val += order[:count]
        train += order[count:]
    return PatientSplit(tuple(sorted(train)), tuple(sorted(val)),
                        f"stratified by class, seed {seed}, validation fraction {val_fraction:g}")


def _check_every_class_on_both_sides(cohort: LabelledCohort, split: PatientSplit) -> None:
    """Training needs every class among the training patients, and validation among the validation patients."""
    label_of = {case.case_id: case.label for case in cohort.cases}
    for side, patients in (("training", split.train), ("validation", split.val)):
        missing = sorted(set(cohort.classes) - {label_of[patient] for patient in patients}, key=cohort.classes.index)
        if missing:
            raise DENError(cohort.source, f"the {side} patients ({split.method}) have no case of class(es) "
                                          f"{', '.join(map(repr, missing))}")
