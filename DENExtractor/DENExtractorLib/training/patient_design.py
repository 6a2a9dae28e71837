"""Who may be exchanged with whom on the test patients: the design behind every permutation, bootstrap and guard.

The patient is the unit. A patient whose cases all carry one label is one unit of a between-patient comparison:
under the null its label may move to any other such patient, its cases keeping it together. A patient whose cases
carry different labels (several time points, several lesions) is a within-patient comparison: under the null its
labels may only be shuffled among its own cases, since moving them to another patient would mix the patient's own
level of every score into the test. Each is a *block* of units whose labels are exchangeable; a labelling of the
test cases is one arrangement per block.

The guards count patients, never cases: the smallest p-value the patients themselves can support is one over the
number of ways to relabel the one-label patients, halved once per patient whose labels vary (such a patient is one
replicate of the within-patient comparison: its cases rank the right way round or not). Bootstrap resamples draw
patients within strata of the same label set, so that every resample holds every class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from math import factorial, prod

import numpy as np

EXACT_LIMIT = 100_000
"""Enumerate every arrangement (an exact p-value) when there are at most this many; else draw them at random."""

CHUNK = 10_000
"""Arrangements evaluated at a time (bounds memory: CHUNK x cases labels)."""


@dataclass(frozen=True)
class Block:
    """Units whose labels are exchangeable under the null: ``unit_of_case`` maps each of ``cases`` (test case
    indices) to its unit; ``labels`` is each unit's label."""

    cases: np.ndarray
    unit_of_case: np.ndarray
    labels: np.ndarray

    @property
    def arrangements(self) -> int:
        """Distinct arrangements of the units' labels: the multinomial coefficient of their class counts."""
        return multinomial(np.bincount(self.labels).tolist())

    def every_arrangement(self) -> np.ndarray:
        """(arrangements, units): each distinct arrangement of the labels once, in a fixed order. Class by class,
        every row's free positions are filled by every combination of them (the last class takes what is left)."""
        counts = np.bincount(self.labels)
        rows = np.full((1, len(self.labels)), -1, dtype=np.int64)
        for label, count in enumerate(counts):
            if count == 0:
                continue
            free = np.nonzero(rows == -1)[1].reshape(len(rows), -1)  # each row's free positions, in order
            chosen = np.asarray(list(combinations(range(free.shape[1]), int(count))), dtype=np.int64)
            positions = free[:, chosen].reshape(-1, int(count))
            rows = np.repeat(rows, len(chosen), axis=0)
            rows[np.arange(len(rows))[:, np.newaxis], positions] = label
        return rows


def multinomial(counts: list[int]) -> int:
    """(sum of counts)! / prod(count!): the distinct orders of a multiset with these multiplicities."""
    total = factorial(sum(counts))
    for count in counts:
        total //= factorial(count)
    return total


class PatientDesign:
    """The test cases' patients and labels, and the permutations, sign flips and resamples they allow."""

    def __init__(self, truth: np.ndarray, groups: list[str]) -> None:
        names = sorted(set(groups))
        index_of = {name: index for index, name in enumerate(names)}
        self.truth = np.asarray(truth, dtype=np.int64)
        self.patient_of_case = np.asarray([index_of[group] for group in groups], dtype=np.int64)
        self.members = [np.flatnonzero(self.patient_of_case == index) for index in range(len(names))]
        self.label_sets = [tuple(np.unique(self.truth[members]).tolist()) for members in self.members]
        single = [index for index, found in enumerate(self.label_sets) if len(found) == 1]
        self.varying = [index for index, found in enumerate(self.label_sets) if len(found) > 1]
        self.blocks: list[Block] = []
        if len(single) > 1:
            cases = np.concatenate([self.members[index] for index in single])
            unit = np.concatenate([np.full(len(self.members[index]), position) for position, index in enumerate(single)])
            self.blocks.append(Block(cases, unit, np.asarray([self.label_sets[index][0] for index in single])))
        for index in self.varying:
            cases = self.members[index]
            self.blocks.append(Block(cases, np.arange(len(cases)), self.truth[cases]))
        self.single_label_counts = np.bincount([self.label_sets[index][0] for index in single]).tolist()

    @property
    def patients(self) -> int:
        """Number of test patients."""
        return len(self.members)

    @property
    def labellings(self) -> int:
        """Distinct labellings of the test cases the permutations reach (the product over blocks)."""
        return prod(block.arrangements for block in self.blocks)

    @property
    def patient_labellings(self) -> int:
        """Labellings counted by patients: one-label patients relabelled among themselves, times two per patient
        whose labels vary."""
        return multinomial(self.single_label_counts) * 2 ** len(self.varying)

    @property
    def smallest_p(self) -> float:
        """The smallest p-value these patients can support (the guard): 1 / :attr:`patient_labellings`."""
        return 1 / self.patient_labellings

    @property
    def smallest_paired_p(self) -> float:
        """The smallest two-sided sign-flip p-value over these patients: 2 / 2^patients (a flip of every patient
        gives the observed difference back, negated)."""
        return min(1.0, 2 / 2 ** self.patients)

    def describe(self) -> str:
        """How labels are permuted, in words."""
        single = self.patients - len(self.varying)
        if not self.varying:
            return "labels permuted between patients (a patient's cases keep their label together)"
        between = (f" and permuted between the {single} patients with one label" if single > 1 else "")
        return f"labels shuffled within each of the {len(self.varying)} patients whose labels vary{between}"

    def labelling_chunks(self, generator: np.random.Generator) -> Iterator[np.ndarray]:
        """Label vectors (chunk, cases): every distinct labelling once when there are at most :data:`EXACT_LIMIT`
        (then the iterator ends), else endless chunks of random labellings drawn from ``generator``."""
        if self.labellings <= EXACT_LIMIT:
            yield from self._every_labelling()
            return
        while True:
            labels = np.tile(self.truth, (CHUNK, 1))
            for block in self.blocks:
                drawn = generator.permuted(np.tile(block.labels, (CHUNK, 1)), axis=1)
                labels[:, block.cases] = drawn[:, block.unit_of_case]
            yield labels

    def _every_labelling(self) -> Iterator[np.ndarray]:
        """Every distinct labelling, in chunks: the product of the blocks' arrangements in mixed radix."""
        choices = [block.every_arrangement() for block in self.blocks]
        sizes = [len(found) for found in choices]
        total = prod(sizes)
        for start in range(0, total, CHUNK):
            index = np.arange(start, min(total, start + CHUNK), dtype=np.int64)
            labels = np.tile(self.truth, (len(index), 1))
            for block, found, size in zip(self.blocks, choices, sizes, strict=True):
                labels[:, block.cases] = found[index % size][:, block.unit_of_case]
                index = index // size
            yield labels

    def flip_chunks(self, generator: np.random.Generator) -> Iterator[np.ndarray]:
        """Per-case swaps (chunk, cases) of boolean, constant over each patient's cases: all 2^patients when there
        are at most :data:`EXACT_LIMIT` (then the iterator ends), else endless random chunks."""
        if 2 ** self.patients <= EXACT_LIMIT:
            total = 2 ** self.patients
            for start in range(0, total, CHUNK):
                index = np.arange(start, min(total, start + CHUNK), dtype=np.int64)
                by_patient = (index[:, np.newaxis] >> np.arange(self.patients)) & 1
                yield by_patient[:, self.patient_of_case].astype(bool)
            return
        while True:
            yield generator.random((CHUNK, self.patients))[:, self.patient_of_case] < 0.5

    @property
    def flips_exact(self) -> bool:
        """Whether :meth:`flip_chunks` enumerates every sign flip."""
        return 2 ** self.patients <= EXACT_LIMIT

    @property
    def strata(self) -> dict[tuple[int, ...], list[int]]:
        """Patients by their set of labels: the bootstrap draws within each, so every resample holds every class."""
        found: dict[tuple[int, ...], list[int]] = {}
        for index, labels in enumerate(self.label_sets):
            found.setdefault(labels, []).append(index)
        return found

    def bootstrap_weights(self, resamples: int, generator: np.random.Generator) -> np.ndarray:
        """(resamples, cases): how often each case's patient is drawn, patients drawn with replacement within
        each stratum (a case's weight is its patient's count)."""
        counts = np.zeros((resamples, self.patients), dtype=np.float64)
        for patients in self.strata.values():
            drawn = generator.integers(0, len(patients), size=(resamples, len(patients)))
            for position, patient in enumerate(patients):
                counts[:, patient] = (drawn == position).sum(axis=1)
        return counts[:, self.patient_of_case]
