"""The labelled cohort of ``den-train``: the cases CSV of ``den-extract --cases`` plus a label column.

Rows are read with :func:`DENExtractorLib.cohorts.cases_csv.read_cases_csv` (same columns, same relative-path rule, same
per-row problems). On top of it this module checks what training needs: the label column exists, at least two
classes remain, every class has at least two patients, and image mode is all or nothing. A row without a label or
a row that cannot run is excluded and listed, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cohorts.cases_csv import read_cases_csv
from ..errors import DENError
from ..hashing import file_sha256

SPLIT_COLUMN = "split"
"""Optional CSV column that fixes each case's side: ``train``, ``val`` (``validation``) or ``test``."""

SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
GROUP_COLUMN = "group"
"""Optional CSV column naming each case's patient (or other group): a group's cases always stay on one side of
every split and every cross-validation. Without it every case is its own group."""
MIN_PATIENTS_PER_CLASS = 2
MISSING_LABELS = frozenset({"nan", "na", "n/a", "#n/a", "null"})
"""Label cells that mean "no label" (as pandas, R and spreadsheets write a missing value, any case): such a row is
excluded, never a class of its own."""


@dataclass(frozen=True)
class LabelledCase:
    """One case: id, segmentation, optional MRI (image mode), class label, if the CSV fixes it its split side, and
    its group (patient; the case id when the CSV has no ``group`` column)."""

    case_id: str
    segmentation: Path
    image: Path | None
    label: str
    split: str | None = None
    group: str = ""

    @property
    def patient(self) -> str:
        """The group the case belongs to: the ``group`` cell, or the case id."""
        return self.group or self.case_id


@dataclass(frozen=True)
class Exclusion:
    """A case left out of training, with the one-line reason."""

    case_id: str
    message: str


@dataclass(frozen=True)
class LabelledCohort:
    """The cases that can be trained on, their classes in index order, and what was excluded and why."""

    source: Path
    sha256: str
    label_column: str
    cases: tuple[LabelledCase, ...]
    classes: tuple[str, ...]
    excluded: tuple[Exclusion, ...]
    split_from_column: bool

    @property
    def image_mode(self) -> bool:
        """Whether the cases carry an MRI (image mode)."""
        return any(case.image is not None for case in self.cases)

    def class_index(self, case: LabelledCase) -> int:
        """The index of a case's label in :attr:`classes`."""
        return self.classes.index(case.label)

    def without(self, failures: list[Exclusion]) -> LabelledCohort:
        """The cohort with the failed cases removed and listed, re-checked for enough patients per class."""
        failed = {failure.case_id for failure in failures}
        kept = tuple(case for case in self.cases if case.case_id not in failed)
        return _checked_cohort(self.source, self.sha256, self.label_column, kept, self.excluded + tuple(failures),
                               self.split_from_column)


def read_labelled_cohort(path: str | Path, label_column: str) -> LabelledCohort:
    """Read a cases CSV with a label column into a :class:`LabelledCohort`.

    Raises :class:`DENError` (one line naming the file) when the label column is missing, fewer than two classes
    remain, a class has fewer than two patients, image mode is mixed, a ``split`` cell is not train/val/test, or a
    ``split`` column puts one group's cases on two sides. Rows
    with a problem (missing file...) or without a label are excluded and listed in ``excluded``.
    """
    path = Path(path)
    table = read_cases_csv(path)
    column = _find_column(table.carried_columns, label_column)
    if column is None:
        found = ", ".join(repr(name) for name in table.carried_columns) or "none"
        raise DENError(path, f"no label column {label_column!r}; the other columns are {found}")
    split_column = _find_column(table.carried_columns, SPLIT_COLUMN)
    group_column = _find_column(table.carried_columns, GROUP_COLUMN)
    cases, excluded = [], []
    for row in table.rows:
        cell = row.columns.get(column, "").strip()
        label = "" if cell.lower() in MISSING_LABELS else cell
        if row.problem is not None:
            excluded.append(Exclusion(row.case_id, f"{row.problem}: excluded"))
        elif not label:
            excluded.append(Exclusion(row.case_id, f"{path} row {row.row}: case {row.case_id!r} has no value"
                                                    f"{f' ({cell!r} means missing)' if cell else ''} in "
                                                    f"column {column!r}: excluded"))
        else:
            split = _split_side(row.columns.get(split_column, ""), path, row.row) if split_column else None
            group = row.columns.get(group_column, "").strip() if group_column else ""
            cases.append(LabelledCase(row.case_id, row.case.segmentation, row.image, label, split, group))
    _refuse_mixed_image_mode(cases, path)
    _refuse_groups_across_sides(cases, path)
    return _checked_cohort(path, file_sha256(path), column, tuple(cases), tuple(excluded), split_column is not None)


def _checked_cohort(source: Path, sha256: str, label_column: str, cases: tuple[LabelledCase, ...],
                    excluded: tuple[Exclusion, ...], split_from_column: bool) -> LabelledCohort:
    """Build the cohort after checking it has two classes or more, each with enough patients."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.label] = counts.get(case.label, 0) + 1
    if len(counts) < 2:
        found = f"only {sorted(counts)}" if counts else "no labelled case"
        raise DENError(source, f"column {label_column!r} needs at least two classes to train on; found {found}")
    small = [(label, count) for label, count in sorted(counts.items()) if count < MIN_PATIENTS_PER_CLASS]
    if small:
        listed = ", ".join(f"{label!r} ({count})" for label, count in small[:5])
        more = f" and {len(small) - 5} more classes (is {label_column!r} a measurement, not a class?)" if len(small) > 5 else ""
        raise DENError(source, f"every class needs at least {MIN_PATIENTS_PER_CLASS} patients (one to train on, one "
                               f"to validate on); too few in {listed}{more}")
    return LabelledCohort(source, sha256, label_column, cases, sorted_classes(counts), excluded, split_from_column)


def sorted_classes(labels: dict[str, int] | list[str]) -> tuple[str, ...]:
    """Class names in index order: numerically when every name is a number, otherwise alphabetically."""
    names = sorted(set(labels))
    try:
        return tuple(sorted(names, key=float))
    except ValueError:
        return tuple(names)


def _find_column(columns: tuple[str, ...], wanted: str) -> str | None:
    """The CSV column named ``wanted`` (case and surrounding spaces ignored), or None."""
    folded = wanted.strip().lower()
    return next((name for name in columns if name.strip().lower() == folded), None)


def _split_side(cell: str, path: Path, row: int) -> str:
    """The side a ``split`` cell names."""
    side = SPLIT_VALUES.get(cell.strip().lower())
    if side is None:
        raise DENError(f"{path} row {row}", f"split {cell!r} is not one of train, val, test")
    return side


def _refuse_groups_across_sides(cases: list[LabelledCase], path: Path) -> None:
    """A ``split`` column must keep every group's cases on one side (else the patient is seen on both)."""
    sides: dict[str, str | None] = {}
    for case in cases:
        side = sides.setdefault(case.patient, case.split)
        if side != case.split:
            raise DENError(path, f"group {case.patient!r} has cases in split {side!r} and {case.split!r}: "
                                 "a patient's cases must all be on one side")


def _refuse_mixed_image_mode(cases: list[LabelledCase], path: Path) -> None:
    """Image mode is per model: either every case has an MRI or none does."""
    with_image = [case.case_id for case in cases if case.image is not None]
    if with_image and len(with_image) != len(cases):
        missing = [case.case_id for case in cases if case.image is None]
        raise DENError(path, f"image mode needs an image for every case; none for {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}")
