"""Cohorts at scale on the command line: ``--cases``, ``--jobs``, ``--num-parts``/``--part-id``, ``--scheduler``
and ``--merge``, and the runner they choose. Every runner gives the same features and the same table rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .cases_csv import read_cases_csv
from .cohort import Case, CaseOutcome, run_cohort
from .errors import DENError
from .extractor import DENExtractor
from .parts import CohortEntry, CohortManifest, part_share, part_table_name, resolve_part_id, write_manifest

TABLE_COLUMNS = re.compile(r"(case_id|status|message|rows|foreground_rows|(mean|max)_\d+)", re.IGNORECASE)
"""Columns of den_cohort.csv itself, which a carried-through column of a cases CSV must not repeat."""


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the cohort-at-scale options to ``den-extract``'s parser."""
    group = parser.add_argument_group("cohorts at scale")
    group.add_argument("--cases", type=Path, metavar="CSV",
                       help="run the cases listed in CSV: case_id,segmentation[,image] (pyradiomics' ID,Image,Mask "
                            "work too; relative paths are taken from the CSV's folder; other columns are carried into "
                            "den_cohort.csv)")
    group.add_argument("--jobs", type=_positive, default=1, metavar="N",
                       help="N worker processes on this machine (default 1); with --scheduler local, N Dask workers")
    group.add_argument("--num-parts", type=_positive, metavar="K",
                       help="array job: run only one of K parts of the cohort (case n of the list sorted by id goes "
                            "to part n mod K); then --merge OUT")
    group.add_argument("--part-id", type=int, metavar="I",
                       help="the part to run, 0..K-1 (default: $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX)")
    group.add_argument("--merge", type=Path, metavar="OUT",
                       help="build OUT/den_cohort.csv from the parts' outputs, checking each case; lists missing "
                            "cases (exit 1 if any)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the cases on a Dask cluster: tcp://HOST:PORT, or 'local' for a local cluster of "
                            "--jobs workers (needs pip install 'DENExtractorLib[dask]')")


def check_scale_arguments(arguments: argparse.Namespace, parser: argparse.ArgumentParser, cohort_given: bool) -> None:
    """Refuse option combinations that make no sense, with argparse's usual one-line error."""
    if arguments.part_id is not None and arguments.num_parts is None:
        parser.error("--part-id needs --num-parts K")
    if arguments.num_parts is not None and not cohort_given:
        parser.error("--num-parts applies to a cohort: give --cases CSV or --cohort DIR")
    if arguments.scheduler is not None and arguments.scheduler != "local" and arguments.jobs != 1:
        parser.error("--jobs sets the size of --scheduler local; your own cluster has the workers you started")


def entries_from_csv(path: Path) -> tuple[list[CohortEntry], tuple[str, ...]]:
    """The entries of a cases CSV sorted by case id (bad rows kept with their problem) and its carried columns."""
    table = read_cases_csv(path)
    clashing = [name for name in table.carried_columns if TABLE_COLUMNS.fullmatch(name)]
    if clashing:
        raise DENError(path, f"the column {clashing[0]!r} would clash with den_cohort.csv's own column of that name: "
                             "rename it")
    entries = [CohortEntry(Case(row.case_id, row.segmentation or Path(), row.image), row.columns, row.problem)
               for row in table.rows]
    return sorted(entries, key=_case_id), table.carried_columns


def entries_from_cases(cases: Sequence[Case]) -> list[CohortEntry]:
    """Entries for cases found without a cases CSV (a folder pattern, or files), in their order."""
    return [CohortEntry(case) for case in cases]


def share_for_this_part(entries: list[CohortEntry], carried_columns: tuple[str, ...], arguments: argparse.Namespace,
                        output: Path, extractor: DENExtractor) -> tuple[list[CohortEntry], str]:
    """In an array job: record the whole cohort in the output folder and return this part's entries and the name
    of its own table. Raises :class:`DENError` for a bad part id or a cohort differing from another part's."""
    part_id = resolve_part_id(arguments.num_parts, arguments.part_id)
    manifest = CohortManifest(arguments.num_parts, extractor.settings, not arguments.no_png, carried_columns,
                              tuple(entries))
    write_manifest(output, manifest)
    return part_share(entries, arguments.num_parts, part_id, _case_id), part_table_name(part_id, arguments.num_parts)


def run_entries(entries: list[CohortEntry], output: Path, extractor: DENExtractor, arguments: argparse.Namespace,
                on_case_done: Callable[[CaseOutcome], None]) -> None:
    """Report the entries that cannot run as failed, then run the others with the runner the options choose:
    Dask (``--scheduler``), worker processes (``--jobs`` > 1) or this process."""
    for entry in entries:
        if entry.problem is not None:
            on_case_done(CaseOutcome(entry.case, "failed", entry.problem))
    cases = [entry.case for entry in entries if entry.problem is None]
    if not cases:
        return
    options = {"resume": arguments.resume, "png": not arguments.no_png, "on_case_done": on_case_done}
    if arguments.scheduler is not None:
        if importlib.util.find_spec("distributed") is None:
            raise DENError("--scheduler", "Dask is not installed: pip install 'DENExtractorLib[dask]'")
        from .dask_runner import run_cases_on_dask

        run_cases_on_dask(cases, output, extractor.settings, scheduler=arguments.scheduler, jobs=arguments.jobs, **options)
    elif arguments.jobs > 1:
        from .parallel import run_cases_in_processes

        run_cases_in_processes(cases, output, extractor.settings, jobs=arguments.jobs, **options)
    else:
        run_cohort(cases, output, extractor, **options)


def in_case_order(outcomes: list[CaseOutcome], entries: list[CohortEntry]) -> list[CaseOutcome]:
    """Outcomes reported as cases finished, put back in the cohort's order (the table's row order)."""
    position = {entry.case.case_id: index for index, entry in enumerate(entries)}
    return sorted(outcomes, key=lambda outcome: position.get(outcome.case.case_id, len(position)))


def carried_values(entries: list[CohortEntry]) -> dict[str, Mapping[str, str]]:
    """Each case's carried-through cells, by case id."""
    return {entry.case.case_id: entry.columns for entry in entries}


def run_merge(folder: Path) -> int:
    """``den-extract --merge OUT``: write the cohort table, list the missing cases; return the exit status."""
    from .merge import merge_parts

    result = merge_parts(folder)
    for outcome in result.missing:
        print(f"den-extract: missing: {outcome.case.case_id}: {outcome.message}", file=sys.stderr)
    done = len(result.outcomes) - len(result.missing)
    print(f"{len(result.outcomes)} case(s): {done} complete, {len(result.missing)} missing; cohort table: {result.table}",
          file=sys.stderr)
    return 1 if result.missing else 0


def _case_id(entry: CohortEntry) -> str:
    """Sort key: the case id."""
    return entry.case.case_id


def _positive(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
