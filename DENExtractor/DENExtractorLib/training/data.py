"""The slices training sees: every tumour slice of a patient, carrying that patient's label, read in batches.

Only indices are held in memory; the slices themselves are read from the cache batch by batch, so memory stays
the same whatever the cohort's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .cache import CachedCase

ReadCase = Callable[[CachedCase, np.ndarray], np.ndarray]
"""Reads the given stored rows of a case: its network inputs, or its cached frozen-trunk outputs."""


@dataclass(frozen=True)
class SliceSet:
    """The slices of some patients: for slice ``s``, ``cases[patient[s]]`` row ``row[s]``."""

    cases: tuple[CachedCase, ...]
    patient: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        """Number of slices."""
        return len(self.row)

    @property
    def labels(self) -> np.ndarray:
        """The class index of every slice (its patient's label)."""
        return np.asarray([case.label_index for case in self.cases], dtype=np.int64)[self.patient]

    @property
    def patient_labels(self) -> np.ndarray:
        """The class index of every patient."""
        return np.asarray([case.label_index for case in self.cases], dtype=np.int64)

    def read(self, positions: np.ndarray, read_case: ReadCase) -> np.ndarray:
        """The data of the slices at ``positions``, in that order, read one case at a time with ``read_case``."""
        out = None
        for patient in np.unique(self.patient[positions]):
            where = np.flatnonzero(self.patient[positions] == patient)
            block = read_case(self.cases[patient], self.row[positions[where]])
            if out is None:
                out = np.empty((len(positions), *block.shape[1:]), dtype=block.dtype)
            out[where] = block
        if out is None:
            raise ValueError("no slices to read")
        return out

    def batches(self, order: np.ndarray, batch_size: int,
                read_case: ReadCase) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (positions, data) for consecutive batches of the slices in ``order``."""
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            yield positions, self.read(positions, read_case)


def slice_set(cases: list[CachedCase]) -> SliceSet:
    """All the stored (tumour) slices of the given patients, patient by patient, rows in order."""
    counts = [case.slices for case in cases]
    patient = np.repeat(np.arange(len(cases)), counts)
    row = np.concatenate([np.arange(count) for count in counts]) if cases else np.zeros(0, dtype=np.int64)
    return SliceSet(tuple(cases), patient.astype(np.int64), row.astype(np.int64))


def class_weights(labels: np.ndarray, class_count: int) -> dict[int, float]:
    """Balanced class weights: ``slices / (classes * slices of the class)``, so every class counts the same."""
    counts = np.bincount(labels, minlength=class_count)
    return {index: float(len(labels) / (class_count * count)) for index, count in enumerate(counts) if count}


def one_hot(labels: np.ndarray, class_count: int) -> np.ndarray:
    """(n, class_count) float32 one-hot targets."""
    return np.eye(class_count, dtype=np.float32)[labels]
