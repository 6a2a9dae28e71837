"""``den-extract``: DEN features from the command line, for one file, several, a whole cohort, or the demo.

:func:`main` reads as the run's phases: check the options, gather the cases, take this part's share, run them,
write the table, summarise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..cohorts.cases import CaseOutcome, CohortEntry, cases_from_files, find_cases
from ..cohorts.resume import refuse_overwrites
from ..cohorts.runners import (
    carried_values,
    entries_from_cases,
    entries_from_csv,
    in_case_order,
    run_entries,
    share_for_this_part,
)
from ..cohorts.slice_table import SLICE_PARQUET_NAME, SLICE_TABLE_NAME, write_slice_table
from ..cohorts.table import COHORT_PARQUET_NAME, COHORT_TABLE_NAME, write_cohort_parquet, write_cohort_table
from ..dataframes import require
from ..demo import write_synthetic_case
from ..errors import DENError, describe_error
from ..extraction.extractor import DENExtractor
from ..outputs.atomic import remove_leftover_partials
from ..outputs.output_folder import prepare_output_folder, removed_if_left_empty
from ..params import ParamsFile, read_params
from ..settings import ExtractionSettings
from .logs import LIBRARY_LOGGER, say
from .options import (
    EXIT_CASE_FAILED,
    EXIT_OK,
    EXIT_STATUSES,
    CommandParser,
    add_common_arguments,
    add_logging_arguments,
    add_params_argument,
    add_scale_arguments,
    add_settings_arguments,
    check_scale_arguments,
    exit_with,
    run_command,
    settings_from,
)

DEMO_CASE_NAME = "synthetic_glioblastoma.nii.gz"
DEMO_SHARED_COHORT = Path("..", "shared", "data", "brats2015")  # beside the checkout, from the checkout's folder
DEMO_SHARED_PATTERN = "{id}/OTMultiClass.nii.gz"


@dataclass
class Gathered:
    """The cases of this run, the cases CSV's carried-through columns, and the name of the table to write."""

    entries: list[CohortEntry]
    carried_columns: tuple[str, ...] = ()
    table_name: str = COHORT_TABLE_NAME
    cohort: bool = False


def build_parser() -> argparse.ArgumentParser:
    """The ``den-extract`` argument parser."""
    parser = CommandParser(
        prog="den-extract",
        usage="%(prog)s (SEG ... | --cohort DIR | --cases CSV | --demo [CASE]) -o OUT [options]\n"
              "       %(prog)s --merge OUT [--parquet] [--slice-table]",
        description="Extract DEN deep features (4096 per slice) from glioblastoma segmentations "
        "(.nii, .nii.gz, .seg.nrrd, .nrrd, .nhdr, DICOM SEG .dcm; an image may also be a DICOM series folder). "
        "Writes NAME_den.npy, NAME_den.png and NAME_den.json (provenance).",
        epilog="examples:\n  den-extract seg.nii.gz -o out\n"
        "  den-extract --cohort DATA --pattern '{id}_nifti/{id}_tumor_segmentation.nii.gz' -o out --resume\n"
        f"  den-extract --cases cases.csv -o out --jobs 4\n  den-extract --demo -o out\n\n{EXIT_STATUSES}.",
    )
    parser.add_argument("segmentations", nargs="*", type=Path, metavar="SEG", help="segmentation files")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT",
                        help="output folder (created if needed); required, except with --merge")
    parser.add_argument("--image", type=Path, action="append", metavar="MRI",
                        help="image mode: the MRI of each SEG, in order (intensities inside the segmentation); a "
                             "NIfTI/NRRD file or a DICOM series folder")
    parser.add_argument("--grid", type=Path, action="append", metavar="SERIES",
                        help="label mode with a DICOM SEG: the image series folder (or NIfTI/NRRD image) of each SEG, "
                             "in order, whose grid the SEG is placed on (its intensities are not used); needed when "
                             "the SEG omits empty frames")
    parser.add_argument("--series", metavar="UID",
                        help="the Series Instance UID to read from a DICOM folder (--image or --grid) that holds several "
                             "series (the refusal lists them)")
    parser.add_argument("--roi", metavar="NAME",
                        help="the ROI (by name) to read from a DICOM RTSTRUCT segmentation (the refusal lists them)")
    add_settings_arguments(parser, "Keras .weights.h5 or .keras file (default: bundled den-ref-v1)")
    add_params_argument(parser)
    parser.add_argument("--no-png", action="store_true", help="do not draw the heatmap pictures")
    group = parser.add_argument_group("cohort")
    group.add_argument("--cohort", type=Path, metavar="DIR", help="run every case under DIR matching --pattern")
    group.add_argument("--pattern", default="{id}.nii.gz",
                       help="case files relative to DIR; {id} is the case id (default: '{id}.nii.gz')")
    group.add_argument("--image-pattern", metavar="PATTERN",
                       help="image mode in a cohort: each case's MRI, e.g. '{id}/flair.nii.gz'")
    group.add_argument("--resume", action="store_true",
                       help="skip cases whose outputs are complete and made from the same inputs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs of other inputs or settings found under the same names "
                             "(refused otherwise)")
    group.add_argument("--parquet", action="store_true",
                       help=f"also write the cohort table as {COHORT_PARQUET_NAME} (needs pandas and pyarrow)")
    group.add_argument("--slice-table", action="store_true",
                       help=f"also write a per-slice table, one row per case and slice: {SLICE_TABLE_NAME} "
                            f"({SLICE_PARQUET_NAME} with --parquet)")
    add_scale_arguments(parser)
    parser.add_argument("--demo", nargs="?", const="auto", metavar="CASE",
                        help="run the demo: the real BraTS cases in ../shared/data/brats2015 when that folder is "
                        "there, else a generated synthetic glioblastoma (says which); '--demo synthetic' always "
                        "generates, '--demo CASE' runs on the file CASE")
    add_common_arguments(parser, "no progress bar")
    add_logging_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-extract``; return the exit status (see :data:`EXIT_STATUSES`)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    return run_command("den-extract", lambda: _run(arguments, parser), debug=arguments.debug,
                       interrupted="interrupted; finished cases are kept", verbose=arguments.verbose,
                       log_file=arguments.log_file)


def _run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The phases: check the options (no TensorFlow), gather the cases, this part's share, run, table, summary."""
    if arguments.merge is not None:
        if any(_sources_given(arguments)) or arguments.output is not None:
            parser.error("--merge OUT takes the output folder of the parts, and nothing else to run")
        return _merge(arguments.merge, arguments)
    params = read_params(arguments.params) if arguments.params is not None else None
    if params is not None:
        _take_output_params(arguments, params)
    _check_options(arguments, parser)
    settings = settings_from(arguments, params)
    with removed_if_left_empty(arguments.output):
        output = prepare_output_folder(arguments.output, remove_partials=arguments.num_parts is None)
        extractor = DENExtractor(settings)
        gathered = _gather_cases(arguments, output)
        if not arguments.overwrite:
            refuse_overwrites(gathered.entries, output, settings)
        if arguments.num_parts is not None:
            gathered.entries, gathered.table_name = share_for_this_part(
                gathered.entries, gathered.carried_columns, output, extractor,
                num_parts=arguments.num_parts, part_id=arguments.part_id, png=not arguments.no_png)
        _check_table_paths(arguments, gathered, output)
        outcomes: list[CaseOutcome] = []
        try:
            _run_with_progress(gathered.entries, arguments, output, extractor, outcomes)
        except KeyboardInterrupt:
            remove_leftover_partials(output)  # those of workers that died with the interruption
            _write_table(arguments, gathered, outcomes, output, settings, "cohort table of the finished cases")
            _summarise(outcomes, len(gathered.entries))
            raise
        remove_leftover_partials(output)  # those of workers that were killed mid-case
        tables_written = _write_table(arguments, gathered, outcomes, output, settings, "cohort table")
        status = _summarise(outcomes, len(gathered.entries))
        return status if tables_written else EXIT_CASE_FAILED


def _sources_given(arguments: argparse.Namespace) -> list[bool]:
    """Which of the four ways to name cases were used: files, ``--cohort``, ``--cases``, ``--demo``."""
    return [bool(arguments.segmentations), arguments.cohort is not None, arguments.cases is not None,
            arguments.demo is not None]


def _cohort_given(arguments: argparse.Namespace) -> bool:
    """Whether the cases are a cohort (``--cohort`` or ``--cases``), which gets a cohort table."""
    return arguments.cohort is not None or arguments.cases is not None


def _take_output_params(arguments: argparse.Namespace, params: ParamsFile) -> None:
    """The settings file's output choices (``png``, ``parquet``, ``slice_table``), where the command line gave none."""
    values = params.values
    arguments.no_png = arguments.no_png or values.get("png") is False
    arguments.parquet = arguments.parquet or values.get("parquet", False)
    arguments.slice_table = arguments.slice_table or values.get("slice_table", False)


def _check_options(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse combinations of options that make no sense, with argparse's one-line error (exit 2)."""
    if arguments.output is None:
        parser.error("the following arguments are required: -o/--output")
    if sum(_sources_given(arguments)) != 1:
        parser.error("give segmentation files, or --cohort DIR, or --cases CSV, or --demo")
    check_scale_arguments(arguments, parser, _cohort_given(arguments))
    if arguments.cases is not None and (arguments.image or arguments.image_pattern):
        parser.error("with --cases, each case's MRI is the CSV's image column")
    if arguments.cohort is not None and arguments.image:
        parser.error("in a cohort, name each case's MRI with --image-pattern, not --image")
    if arguments.grid and (arguments.cases is not None or arguments.cohort is not None):
        parser.error("--grid pairs with segmentation files; in a cases CSV, give each case's grid in a 'grid' column")
    if (arguments.series or arguments.roi) and (arguments.cases is not None or arguments.cohort is not None):
        parser.error("--series and --roi pair with segmentation files; in a cases CSV, give each case's in a 'series' "
                     "or 'roi' column")
    if arguments.cohort is None and arguments.image_pattern:
        parser.error("--image-pattern only applies with --cohort")
    if (arguments.parquet or arguments.slice_table) and not _cohort_given(arguments):
        parser.error("--parquet and --slice-table write cohort tables: give --cases CSV or --cohort DIR")
    _check_table_libraries(arguments)


def _check_table_libraries(arguments: argparse.Namespace) -> None:
    """--parquet needs pandas and pyarrow: refused before any work when they are missing."""
    if arguments.parquet:
        require("pandas", "--parquet")
        require("pyarrow", "--parquet")


def _gather_cases(arguments: argparse.Namespace, output: Path) -> Gathered:
    """The cases the options name: a cases CSV, a cohort folder, the demo, or files."""
    if arguments.cases is not None:
        return Gathered(*entries_from_csv(arguments.cases), cohort=True)
    if arguments.cohort is not None:
        return Gathered(_cohort_entries(arguments, arguments.cohort, arguments.pattern, arguments.image_pattern),
                        cohort=True)
    if arguments.demo is not None:
        return _demo_cases(arguments, output)
    return Gathered(entries_from_cases(cases_from_files(arguments.segmentations, arguments.image, arguments.grid,
                                                        series=arguments.series, roi=arguments.roi, out_dir=output)))


def _cohort_entries(arguments: argparse.Namespace, folder: Path, pattern: str, image_pattern: str | None,
                    ) -> list[CohortEntry]:
    """The cases under a cohort folder that match ``pattern``, noting the hidden matches skipped."""
    found = find_cases(folder, pattern, image_pattern)
    if found.skipped_hidden:
        _say(arguments, f"note: skipped {len(found.skipped_hidden)} hidden match(es) (names starting with '.'): "
                        f"{', '.join(found.skipped_hidden[:5])}")
    return entries_from_cases(found.cases)


def _demo_cases(arguments: argparse.Namespace, output: Path) -> Gathered:
    """The demo's cases, saying which: ``--demo CASE`` that file; plain ``--demo`` the shared real BraTS cases
    (``../shared/data/brats2015``, a cohort) where that folder is there, else (and with ``--demo synthetic``) a
    synthetic glioblastoma generated into the output folder."""
    if arguments.demo not in ("auto", "synthetic"):
        return Gathered(entries_from_cases(cases_from_files([Path(arguments.demo)], arguments.image, out_dir=output)))
    if arguments.demo == "auto" and DEMO_SHARED_COHORT.is_dir():
        entries = _cohort_entries(arguments, DEMO_SHARED_COHORT, DEMO_SHARED_PATTERN, None)
        _say(arguments, f"demo: the {len(entries)} real BraTS 2015 case(s) in {DEMO_SHARED_COHORT}")
        return Gathered(entries, cohort=True)
    demo_case = output / DEMO_CASE_NAME
    reason = f"no {DEMO_SHARED_COHORT} here, so " if arguments.demo == "auto" else ""
    _say(arguments, f"demo: {reason}a generated synthetic glioblastoma label map: {arguments.output / DEMO_CASE_NAME}")
    write_synthetic_case(demo_case)
    return Gathered(entries_from_cases(cases_from_files([demo_case], arguments.image, out_dir=output)))


def _run_with_progress(
    entries: list[CohortEntry], arguments: argparse.Namespace, output: Path, extractor: DENExtractor,
    outcomes: list[CaseOutcome],
) -> None:
    """Run the cases, printing one line per case as it finishes into ``outcomes``, and the progress on stderr: a
    progress bar on a terminal, else (a log file, a pipe) one plain line per finished case, never a redraw."""
    from tqdm import tqdm

    show_progress = not arguments.quiet and len(entries) >= 2
    on_terminal = sys.stderr.isatty()
    bar = tqdm(total=len(entries), unit="case", disable=not (show_progress and on_terminal), file=sys.stderr)
    started = time.monotonic()

    def report(outcome: CaseOutcome) -> None:
        outcomes.append(outcome)
        bar.update(1)
        if outcome.status == "failed":
            say(f"den-extract: error: {outcome.message}", level=logging.ERROR,
                write=lambda text: bar.write(text, file=sys.stderr))
        else:
            say(f"{outcome.case.case_id}: {outcome.status}, {outcome.rows} rows ({outcome.foreground_rows} with "
                f"tumour) -> {outcome.outputs['npy']}", write=bar.write)
        if show_progress and not on_terminal:
            say(f"progress: {len(outcomes)}/{len(entries)} cases finished, {time.monotonic() - started:.0f} s elapsed")

    try:
        run_entries(entries, output, extractor, resume=arguments.resume, png=not arguments.no_png,
                    jobs=arguments.jobs, scheduler=arguments.scheduler, on_case_done=report)
    finally:
        bar.close()


def _table_paths(arguments: argparse.Namespace, output: Path, stem: str) -> list[Path]:
    """The tables a cohort run writes: the cohort table, and the Parquet and per-slice tables asked for; ``stem`` is
    ``den_cohort`` or an array job part's ``den_cohort.part-I-of-K``."""
    paths = [output / f"{stem}.csv"]
    if arguments.parquet:
        paths.append(output / f"{stem}.parquet")
    if arguments.slice_table:
        paths.append(output / (stem.replace("den_cohort", "den_slices", 1) + (".parquet" if arguments.parquet else ".csv")))
    return paths


def _check_table_paths(arguments: argparse.Namespace, gathered: Gathered, output: Path) -> None:
    """Before any work: refuse a table name taken by a folder (the tables could not be written after the run)."""
    if not gathered.cohort:
        return
    for path in _table_paths(arguments, output, gathered.table_name.removesuffix(".csv")):
        if path.is_dir():
            raise DENError(path, "a table of this run would replace this existing folder: move it or choose another "
                                 "output folder")


def _write_table(arguments: argparse.Namespace, gathered: Gathered, outcomes: list[CaseOutcome], output: Path,
                 settings: ExtractionSettings, what: str) -> bool:
    """For a cohort, write its table (rows in the cohort's order), and the Parquet and per-slice tables asked
    for, and say where; return whether every table was written (each is tried, whichever fails)."""
    if not gathered.cohort:
        return True
    ordered = in_case_order(outcomes, gathered.entries)
    columns = (gathered.carried_columns, carried_values(gathered.entries), settings)
    return _write_tables(arguments, ordered, output, gathered.table_name.removesuffix(".csv"), columns, what)


def _write_tables(arguments: argparse.Namespace, ordered: list[CaseOutcome], output: Path, stem: str,
                  columns: tuple, what: str, *, csv_table: bool = True) -> bool:
    """The cohort table (unless ``csv_table`` is False: ``--merge`` writes it itself), the Parquet cohort table and
    the per-slice table, when asked for, each on its own: one that cannot be written is reported in one line and
    the others are still written. Returns whether all were."""
    paths = _table_paths(arguments, output, stem)
    writers = {paths[0]: (what, lambda path: write_cohort_table(ordered, path, *columns))} if csv_table else {}
    for path in paths[1:]:
        if path.name.startswith("den_cohort"):
            writers[path] = (f"{what} as Parquet", lambda path: write_cohort_parquet(ordered, path, *columns))
        else:
            writers[path] = ("per-slice table", lambda path: write_slice_table(ordered, path, parquet=arguments.parquet))
    written = True
    for path, (words, write) in writers.items():
        try:
            _say(arguments, f"{words}: {write(path)}")
        except Exception as error:  # one table's fault must not lose the others
            say(f"den-extract: error: {path}: {words} not written ({describe_error(error)})", level=logging.ERROR)
            written = False
    return written


def _summarise(outcomes: list[CaseOutcome], total: int) -> int:
    """Print the closing summary line (for more than one case: one case's line says it all); return the exit status."""
    counts = {status: sum(outcome.status == status for outcome in outcomes) for status in ("done", "resumed", "failed")}
    unfinished = total - len(outcomes)
    if total > 1:
        say(f"{total} case(s): {counts['done']} done, {counts['resumed']} resumed, {counts['failed']} failed"
            + (f", {unfinished} not run" if unfinished else ""))
    return EXIT_CASE_FAILED if counts["failed"] else EXIT_OK


def _merge(folder: Path, arguments: argparse.Namespace) -> int:
    """``den-extract --merge OUT``: write the cohort table (and the Parquet and per-slice tables asked for), list
    the missing cases; return the exit status."""
    from ..cohorts.merge import merge_parts
    from ..cohorts.parts import read_manifest

    _check_table_libraries(arguments)
    result = merge_parts(folder)
    tables_written = True
    if arguments.parquet or arguments.slice_table:
        manifest = read_manifest(folder)
        carried = {entry.case.case_id: entry.columns for entry in manifest.entries}
        tables_written = _write_tables(arguments, result.outcomes, folder, "den_cohort",
                                       (manifest.carried_columns, carried, manifest.settings), "cohort table",
                                       csv_table=False)
    for outcome in result.missing:
        say(f"den-extract: missing: {outcome.case.case_id}: {outcome.message}", level=logging.ERROR)
    done = len(result.outcomes) - len(result.missing)
    say(f"{len(result.outcomes)} case(s): {done} complete, {len(result.missing)} missing; cohort table: {result.table}")
    return EXIT_CASE_FAILED if result.missing or not tables_written else EXIT_OK


def _say(arguments: argparse.Namespace, text: str) -> None:
    """Print an informational line unless --quiet (the log file has it either way)."""
    if arguments.quiet:
        logging.getLogger(LIBRARY_LOGGER).info(text)
    else:
        say(text)



def console_main() -> NoReturn:
    """The ``den-extract`` command: :func:`main` on the command line's arguments, ending the process with its status."""
    exit_with(main)


if __name__ == "__main__":
    console_main()
