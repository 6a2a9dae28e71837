"""``den-extract``: DEN features from the command line, for one file, several, a whole cohort, or the demo."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from pathlib import Path

from ._version import __version__
from .cohort import COHORT_TABLE_NAME, CaseOutcome, cases_from_files, find_cases, write_cohort_table
from .demo import write_synthetic_case
from .errors import DENError, describe_error
from .extractor import DENExtractor
from .output_folder import prepare_output_folder
from .parts import CohortEntry
from .scale import (
    add_scale_arguments,
    carried_values,
    check_scale_arguments,
    entries_from_cases,
    entries_from_csv,
    in_case_order,
    run_entries,
    run_merge,
    share_for_this_part,
)
from .settings import MODES, PLANES, ExtractionSettings

DEMO_CASE_NAME = "synthetic_glioblastoma.nii.gz"
EXIT_OK, EXIT_CASE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUSES = (
    "exit status: 0 every case succeeded; 1 a case failed (the others were still done); 2 bad arguments, "
    "weights, cohort folder or output folder (nothing computed); 130 interrupted (Ctrl-C or SIGTERM; finished "
    "cases and the cohort table are kept)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``den-extract`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="den-extract",
        description="Extract DEN deep features (4096 per slice) from glioblastoma segmentations "
        "(.nii, .nii.gz, .seg.nrrd, .nrrd, .nhdr). Writes NAME_den.npy, NAME_den.png and NAME_den.json (provenance).",
        epilog="Examples: den-extract seg.nii.gz -o out | "
        "den-extract --cohort DATA --pattern '{id}_nifti/{id}_tumor_segmentation.nii.gz' -o out --resume | "
        f"den-extract --demo -o out. {EXIT_STATUSES}.",
    )
    parser.add_argument("segmentations", nargs="*", type=Path, metavar="SEG", help="segmentation files")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument("--image", type=Path, action="append", metavar="MRI",
                        help="image mode: the MRI of each SEG, in order (intensities inside the segmentation)")
    parser.add_argument("--mode", choices=MODES, default="reference", help="preprocessing (default: reference)")
    parser.add_argument("--plane", choices=PLANES, help="slicing plane, oriented mode only (default: axial)")
    parser.add_argument("--weights", type=Path, metavar="FILE", help="Keras .weights.h5 or .keras file (default: bundled den-ref-v1)")
    parser.add_argument("--labels", type=_label_list, metavar="L1,L2",
                        help="keep only these label values, e.g. 1,4 (default: all labels)")
    parser.add_argument("--no-png", action="store_true", help="do not draw the heatmap pictures")
    group = parser.add_argument_group("cohort")
    group.add_argument("--cohort", type=Path, metavar="DIR", help="run every case under DIR matching --pattern")
    group.add_argument("--pattern", default="{id}.nii.gz",
                       help="case files relative to DIR; {id} is the case id (default: '{id}.nii.gz')")
    group.add_argument("--image-pattern", metavar="PATTERN", help="image mode in a cohort: each case's MRI, e.g. '{id}/flair.nii.gz'")
    group.add_argument("--resume", action="store_true", help="skip cases whose outputs are complete and made from the same inputs")
    add_scale_arguments(parser)
    parser.add_argument("--demo", nargs="?", const="synthetic", metavar="CASE",
                        help="run on a generated synthetic glioblastoma (or on CASE)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-extract``; return the exit status (see :data:`EXIT_STATUSES`)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(arguments, parser)
    except DENError as error:
        print(f"den-extract: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("den-extract: interrupted; finished cases are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug, not bad input: one line unless --debug
        if arguments.debug:
            traceback.print_exc()
        print(f"den-extract: internal error: {describe_error(error)} (rerun with --debug)", file=sys.stderr)
        return EXIT_CASE_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _interrupt(signal_number: int, frame: object) -> None:
    """SIGTERM (a scheduler's time limit, ``kill``, ``timeout``) stops the run the way Ctrl-C does."""
    raise KeyboardInterrupt


def _run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Check everything that can be checked without TensorFlow, then run the demo, a cohort, or a list of files."""
    sources = [bool(arguments.segmentations), arguments.cohort is not None, arguments.cases is not None,
               arguments.demo is not None]
    if arguments.merge is not None:
        if any(sources) or arguments.output is not None:
            parser.error("--merge OUT takes the output folder of the parts, and nothing else to run")
        return run_merge(arguments.merge)
    if arguments.output is None:
        parser.error("the following arguments are required: -o/--output")
    if sum(sources) != 1:
        parser.error("give segmentation files, or --cohort DIR, or --cases CSV, or --demo")
    cohort_given = arguments.cohort is not None or arguments.cases is not None
    check_scale_arguments(arguments, parser, cohort_given)
    if arguments.cases is not None and (arguments.image or arguments.image_pattern):
        parser.error("with --cases, each case's MRI is the CSV's image column")
    if arguments.cohort is not None and arguments.image:
        parser.error("in a cohort, name each case's MRI with --image-pattern, not --image")
    if arguments.cohort is None and arguments.image_pattern:
        parser.error("--image-pattern only applies with --cohort")
    settings = ExtractionSettings(arguments.mode, arguments.plane, arguments.labels, arguments.weights)
    output = prepare_output_folder(arguments.output, remove_partials=arguments.num_parts is None)
    extractor = DENExtractor(settings)
    carried_columns: tuple[str, ...] = ()
    if arguments.cases is not None:
        entries, carried_columns = entries_from_csv(arguments.cases)
    elif arguments.cohort is not None:
        found = find_cases(arguments.cohort, arguments.pattern, arguments.image_pattern)
        if found.skipped_hidden:
            _say(arguments, f"note: skipped {len(found.skipped_hidden)} hidden match(es) (names starting with '.'): "
                            f"{', '.join(found.skipped_hidden[:5])}")
        entries = entries_from_cases(found.cases)
    elif arguments.demo is not None:
        demo_case = Path(arguments.demo)
        if arguments.demo == "synthetic":
            demo_case = output / DEMO_CASE_NAME
            _say(arguments, f"generating a synthetic glioblastoma label map: {demo_case}")
            write_synthetic_case(demo_case)
        entries = entries_from_cases(cases_from_files([demo_case], arguments.image))
    else:
        entries = entries_from_cases(cases_from_files(arguments.segmentations, arguments.image))
    table_name = COHORT_TABLE_NAME
    if arguments.num_parts is not None:
        entries, table_name = share_for_this_part(entries, carried_columns, arguments, output, extractor)

    def write_table(outcomes: list[CaseOutcome]) -> Path:
        ordered = in_case_order(outcomes, entries)
        return write_cohort_table(ordered, output / table_name, carried_columns, carried_values(entries))

    outcomes: list[CaseOutcome] = []
    try:
        _run_with_progress(entries, arguments, output, extractor, outcomes)
    except KeyboardInterrupt:
        if cohort_given:
            _say(arguments, f"cohort table of the finished cases: {write_table(outcomes)}")
        _summarise(outcomes, len(entries))
        raise
    if cohort_given:
        _say(arguments, f"cohort table: {write_table(outcomes)}")
    return _summarise(outcomes, len(entries))


def _run_with_progress(
    entries: list[CohortEntry], arguments: argparse.Namespace, output: Path, extractor: DENExtractor,
    outcomes: list[CaseOutcome],
) -> None:
    """Run the cases with a progress bar on stderr, printing one line per case as it finishes into ``outcomes``."""
    from tqdm import tqdm

    bar = tqdm(total=len(entries), unit="case", disable=arguments.quiet or len(entries) < 2, file=sys.stderr)

    def report(outcome: CaseOutcome) -> None:
        outcomes.append(outcome)
        bar.update(1)
        if outcome.status == "failed":
            bar.write(f"den-extract: error: {outcome.message}", file=sys.stderr)
        else:
            bar.write(f"{outcome.case.case_id}: {outcome.status}, {outcome.rows} rows "
                      f"({outcome.foreground_rows} with tumour) -> {outcome.outputs['npy']}")

    try:
        run_entries(entries, output, extractor, arguments, report)
    finally:
        bar.close()


def _summarise(outcomes: list[CaseOutcome], total: int) -> int:
    """Print the closing summary line (for more than one case: one case's line says it all); return the exit status."""
    counts = {status: sum(outcome.status == status for outcome in outcomes) for status in ("done", "resumed", "failed")}
    unfinished = total - len(outcomes)
    if total > 1:
        print(f"{total} case(s): {counts['done']} done, {counts['resumed']} resumed, {counts['failed']} failed"
              + (f", {unfinished} not run" if unfinished else ""), file=sys.stderr)
    return EXIT_CASE_FAILED if counts["failed"] else EXIT_OK


def _label_list(text: str) -> tuple[int, ...]:
    """Parse ``--labels 1,4`` into (1, 4)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _say(arguments: argparse.Namespace, text: str) -> None:
    """Print an informational line unless --quiet."""
    if not arguments.quiet:
        print(text, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
