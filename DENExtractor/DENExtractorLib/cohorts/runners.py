"""Cohorts at scale: the entries of a run (from a cases CSV or found cases), an array job's share of them, and the
runner that computes them (Dask, worker processes or this process). Every runner gives the same features and the
same table rows. Plain arguments only: the command line lives in :mod:`..cli`.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import DENError
from ..extraction.extractor import DENExtractor
from .case_worker import CaseJob
from .cases import Case, CaseOutcome, CohortEntry
from .cases_csv import read_cases_csv
from .parts import (
    CohortManifest,
    part_share,
    part_table_name,
    resolve_part_id,
    write_manifest,
)
from .run import run_case, run_cohort
from .table import SETTINGS_COLUMNS

logger = logging.getLogger(__name__)

TABLE_COLUMNS = re.compile(
    rf"(case_id|status|message|rows|foreground_rows|{'|'.join(SETTINGS_COLUMNS)}|(mean|max)_\d+)", re.IGNORECASE)
"""Columns of den_cohort.csv itself, which a carried-through column of a cases CSV must not repeat."""


def entries_from_csv(path: Path) -> tuple[list[CohortEntry], tuple[str, ...]]:
    """The entries of a cases CSV sorted by case id (bad rows kept with their problem) and its carried columns."""
    table = read_cases_csv(path, select_labels=True)
    clashing = [name for name in table.carried_columns if TABLE_COLUMNS.fullmatch(name)]
    if clashing:
        raise DENError(path, f"the column {clashing[0]!r} would clash with den_cohort.csv's own column of that name: "
                             "rename it")
    entries = [CohortEntry(Case(row.case_id, row.segmentation or Path(), row.image, row.labels, row.grid, row.series,
                                row.roi), row.columns,
                           row.problem) for row in table.rows]
    return sorted(entries, key=_case_id), table.carried_columns


def entries_from_cases(cases: Sequence[Case]) -> list[CohortEntry]:
    """Entries for cases found without a cases CSV (a folder pattern, or files), in their order."""
    return [CohortEntry(case) for case in cases]


def share_for_this_part(entries: list[CohortEntry], carried_columns: tuple[str, ...], output: Path,
                        extractor: DENExtractor, *, num_parts: int, part_id: int | None,
                        png: bool) -> tuple[list[CohortEntry], str]:
    """In an array job: record the whole cohort in the output folder and return this part's entries and the name
    of its own table. ``part_id`` None: from the scheduler's environment. Raises :class:`DENError` for a bad part
    id or a cohort differing from another part's."""
    part = resolve_part_id(num_parts, part_id)
    write_manifest(output, CohortManifest(num_parts, extractor.settings, png, carried_columns, tuple(entries)))
    return part_share(entries, num_parts, part, _case_id), part_table_name(part, num_parts)


def run_entries(entries: list[CohortEntry], output: Path, extractor: DENExtractor, *, resume: bool, png: bool,
                jobs: int, scheduler: str | None, on_case_done: Callable[[CaseOutcome], None],
                job: CaseJob = run_case) -> None:
    """Report the entries that cannot run as failed, then run the others with the runner chosen: Dask
    (``scheduler``: an address or "local"), worker processes (``jobs`` > 1) or this process. Each outcome is
    logged (in this process, whichever runner computed it). ``job``: what each case gets (by default extraction, which
    the one-process run does reading the next case ahead; see :data:`~.case_worker.CaseJob`)."""
    on_case_done = _logging(on_case_done)
    for entry in entries:
        if entry.problem is not None:
            on_case_done(CaseOutcome(entry.case, "failed", entry.problem))
    cases = [entry.case for entry in entries if entry.problem is None]
    if not cases:
        return
    runner = (f"Dask ({scheduler})" if scheduler is not None
              else f"{jobs} worker processes" if jobs > 1 else "this process")
    logger.info("running %d case(s) in %s", len(cases), runner)
    if scheduler is not None:
        if importlib.util.find_spec("distributed") is None:
            raise DENError("--scheduler", "Dask is not installed: pip install -e '.[dask]' from a DENExtractor "
                                           "checkout")
        from .dask_cluster import run_cases_on_dask

        run_cases_on_dask(cases, output, extractor.settings, scheduler=scheduler, jobs=jobs, resume=resume, png=png,
                          on_case_done=on_case_done, job=job)
    elif jobs > 1:
        from .processes import run_cases_in_processes

        run_cases_in_processes(cases, output, extractor.settings, jobs=jobs, resume=resume, png=png,
                               on_case_done=on_case_done, job=job)
    elif job is run_case:
        run_cohort(cases, output, extractor, resume=resume, png=png, on_case_done=on_case_done)
    else:
        for case in cases:
            on_case_done(job(case, output, extractor, resume=resume, png=png))


def _logging(on_case_done: Callable[[CaseOutcome], None]) -> Callable[[CaseOutcome], None]:
    """``on_case_done`` that first logs the outcome: a failure as a warning with its message."""
    def report(outcome: CaseOutcome) -> None:
        if outcome.status == "failed":
            logger.warning("case %s failed: %s", outcome.case.case_id, outcome.message)
        else:
            logger.info("case %s %s: %d rows, %d with tumour", outcome.case.case_id, outcome.status, outcome.rows,
                        outcome.foreground_rows)
        on_case_done(outcome)
    return report


def in_case_order(outcomes: list[CaseOutcome], entries: list[CohortEntry]) -> list[CaseOutcome]:
    """Outcomes reported as cases finished, put back in the cohort's order (the table's row order)."""
    position = {entry.case.case_id: index for index, entry in enumerate(entries)}
    return sorted(outcomes, key=lambda outcome: position.get(outcome.case.case_id, len(position)))


def carried_values(entries: list[CohortEntry]) -> dict[str, Mapping[str, str]]:
    """Each case's carried-through cells, by case id."""
    return {entry.case.case_id: entry.columns for entry in entries}


def _case_id(entry: CohortEntry) -> str:
    """Sort key: the case id."""
    return entry.case.case_id
