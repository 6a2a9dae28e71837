"""Running DEN over a cohort in this process: one case at a time, finished ones skipped under resume, and every
failure a failed case, never a stop."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..extraction.extractor import DENExtractor
from ..extraction.result import ExtractionResult, pooled_vector
from ..outputs.files import check_output_names, write_named_outputs
from ..readers import load_case
from ..volume import Volume
from .cases import Case, CaseOutcome
from .resume import reusable_outputs


@dataclass
class _ReadCase:
    """A case whose inputs are read and checked, ready for the network, with its checked output paths."""

    case: Case
    paths: dict[str, Path]
    segmentation: Volume
    image: Volume | None


def run_case(
    case: Case, out_dir: Path, extractor: DENExtractor, *, resume: bool = False, png: bool = True
) -> CaseOutcome:
    """Extract one case and write its outputs; with ``resume``, reuse complete, matching outputs instead.

    Every failure becomes a "failed" outcome with a one-line message, so one case never stops the others.
    """
    read = _read_case(case, out_dir, extractor, resume=resume, png=png)
    if isinstance(read, CaseOutcome):
        return read
    computed = _compute(read, extractor)
    return computed if isinstance(computed, CaseOutcome) else _write(read, computed, png)


def run_cohort(
    cases: list[Case],
    out_dir: str | Path,
    extractor: DENExtractor,
    *,
    resume: bool = False,
    png: bool = True,
    on_case_done: Callable[[CaseOutcome], None] | None = None,
) -> list[CaseOutcome]:
    """Run every case in order with one extractor (its model built once, when a case first needs it).

    While the network computes a case, a background thread reads the next case (never more than one case ahead:
    memory stays that of about three cases); each case goes through exactly what :func:`run_case` does, in the same
    order of checks. Its outputs are written by the background thread too, where a Ctrl-C or SIGTERM
    (``KeyboardInterrupt``, raised in this thread) cannot stop them halfway, and each outcome is reported to
    ``on_case_done``, in case order, as soon as its outputs are written. A caller interrupted therefore holds every
    finished case: the case being written when the interruption comes is finished and reported first.
    """
    out_dir = Path(out_dir)
    outcomes: list[CaseOutcome] = []

    def report(outcome: CaseOutcome) -> None:
        outcomes.append(outcome)
        if on_case_done is not None:
            on_case_done(outcome)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="den-read-write") as background:

        def read_ahead(index: int) -> Future | None:
            if index >= len(cases):
                return None
            return background.submit(_read_case, cases[index], out_dir, extractor, resume=resume, png=png)

        upcoming, written = read_ahead(0), None
        try:
            for index in range(len(cases)):
                read = upcoming.result() if upcoming is not None else None
                upcoming = read_ahead(index + 1)  # read while the network computes this case
                computed = _compute(read, extractor) if isinstance(read, _ReadCase) else read
                if isinstance(read, _ReadCase) and isinstance(computed, ExtractionResult):
                    written = background.submit(_write, read, computed, png)  # a Ctrl-C cannot stop it
                    report(written.result())
                    written = None
                elif isinstance(computed, CaseOutcome):
                    report(computed)
        finally:
            if upcoming is not None:
                upcoming.cancel()
            if written is not None:  # the case being written when an interruption came
                report(written.result())
    return outcomes


def _read_case(
    case: Case, out_dir: Path, extractor: DENExtractor, *, resume: bool, png: bool
) -> _ReadCase | CaseOutcome:
    """A case's checked output names, then (with ``resume``) its reusable outputs, then its inputs read; a failure
    or a resumed case as its outcome."""
    try:
        paths = check_output_names(out_dir, case.case_id)
        if resume:
            settings = extractor.settings.with_labels(case.labels)
            reusable = reusable_outputs(paths, case.segmentation, case.image, settings, png, case.grid,
                                        series=case.series, roi=case.roi)
            if reusable is not None:
                return finished_outcome(case, "resumed", reusable.features, reusable.foreground_rows, reusable.paths)
        return _ReadCase(case, paths, *load_case(case.segmentation, case.image, grid=case.grid, series=case.series,
                                                 roi=case.roi))
    except Exception as error:
        return _failed(case, error)


def _compute(read: _ReadCase, extractor: DENExtractor) -> ExtractionResult | CaseOutcome:
    """The network over a read case; a failure as its outcome."""
    try:
        return extractor.extract(read.segmentation, read.image, labels=read.case.labels)
    except Exception as error:
        return _failed(read.case, error)


def _write(read: _ReadCase, result: ExtractionResult, png: bool) -> CaseOutcome:
    """Write a computed case's outputs to the paths checked when it was read; a failure as its outcome."""
    try:
        written = write_named_outputs(result, read.case.case_id, read.paths, png=png)
        return finished_outcome(read.case, "done", result.features, result.foreground_rows, written, result.pooled)
    except Exception as error:
        return _failed(read.case, error)


def _failed(case: Case, error: Exception) -> CaseOutcome:
    """A failed outcome with the one-line message of a :class:`DENError`, or of an unforeseen fault (one case's
    fault never stops the cohort)."""
    if isinstance(error, DENError):
        return CaseOutcome(case, "failed", str(error))
    return CaseOutcome(case, "failed", f"{case.segmentation}: could not be processed ({describe_error(error)})")


def finished_outcome(
    case: Case, status: str, features: np.ndarray, foreground: np.ndarray, written: dict[str, Path],
    pooled: np.ndarray | None = None,
) -> CaseOutcome:
    """A successful outcome with the pooled patient-level vector (mean then max over foreground rows); ``pooled``:
    the vector when the extraction already computed it (resumed and merged cases pool their stored features)."""
    if pooled is None:
        pooled = pooled_vector(features, foreground)
    return CaseOutcome(case, status, "", int(features.shape[0]), int(foreground.size), pooled, written)
