"""``den-extract``: DEN features from the command line, for one file, several, a whole cohort, or the demo."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from .cohort import (
    COHORT_TABLE_NAME,
    CaseOutcome,
    ExtractionSettings,
    cases_from_files,
    find_cases,
    run_cohort,
    write_cohort_table,
)
from .demo import write_synthetic_case
from .errors import DENError, describe_error
from .preprocessing import MODES, PLANES

DEMO_CASE_NAME = "synthetic_glioblastoma.nii.gz"
EXIT_OK, EXIT_CASE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The ``den-extract`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="den-extract",
        description="Extract DEN deep features (4096 per slice) from glioblastoma segmentations "
        "(.nii, .nii.gz, .seg.nrrd, .nrrd). Writes NAME_den.npy, NAME_den.json (provenance) and NAME_den.png.",
        epilog="Examples: den-extract seg.nii.gz -o out | "
        "den-extract --cohort DATA --pattern '{id}_nifti/{id}_tumor_segmentation.nii.gz' -o out --resume | "
        "den-extract --demo -o out",
    )
    parser.add_argument("segmentations", nargs="*", type=Path, metavar="SEG", help="segmentation files")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder (created if needed)")
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
    parser.add_argument("--demo", nargs="?", const="synthetic", metavar="CASE",
                        help="run on a generated synthetic glioblastoma (or on CASE)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-extract``; return the exit status (0 all cases done, 1 some case failed, 2 bad input)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return _run(arguments, parser)
    except DENError as error:
        print(f"den-extract: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("den-extract: interrupted; finished cases are kept", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: one line unless --debug
        if arguments.debug:
            traceback.print_exc()
        print(f"den-extract: internal error: {type(error).__name__}: {describe_error(error)} (rerun with --debug)", file=sys.stderr)
        return EXIT_CASE_FAILED


def _run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Dispatch to the demo, a cohort, or a list of files."""
    sources = [bool(arguments.segmentations), arguments.cohort is not None, arguments.demo is not None]
    if sum(sources) != 1:
        parser.error("give segmentation files, or --cohort DIR, or --demo")
    if arguments.plane is not None and arguments.mode == "reference":
        parser.error("--plane applies to --mode oriented; reference mode slices along the first stored axis")
    if arguments.cohort is not None and arguments.image:
        parser.error("in a cohort, name each case's MRI with --image-pattern, not --image")
    if arguments.cohort is None and arguments.image_pattern:
        parser.error("--image-pattern only applies with --cohort")
    plane = arguments.plane or PLANES[0]
    settings = ExtractionSettings(arguments.mode, plane, arguments.weights, arguments.labels, png=not arguments.no_png)
    if arguments.cohort is not None:
        cases = find_cases(arguments.cohort, arguments.pattern, arguments.image_pattern)
    elif arguments.demo is not None:
        demo_case = Path(arguments.demo)
        if arguments.demo == "synthetic":
            demo_case = arguments.output / DEMO_CASE_NAME
            _say(arguments, f"generating a synthetic glioblastoma label map: {demo_case}")
            write_synthetic_case(demo_case)
        cases = cases_from_files([demo_case], arguments.image)
    else:
        cases = cases_from_files(arguments.segmentations, arguments.image)
    outcomes = _run_with_progress(cases, arguments, settings)
    if arguments.cohort is not None:
        table = write_cohort_table(outcomes, arguments.output / COHORT_TABLE_NAME)
        _say(arguments, f"cohort table: {table}")
    return _summarise(outcomes)


def _run_with_progress(cases: list, arguments: argparse.Namespace, settings: ExtractionSettings) -> list[CaseOutcome]:
    """Run the cases with a progress bar on stderr, printing each failure as one line as it happens."""
    from tqdm import tqdm

    bar = tqdm(total=len(cases), unit="case", disable=arguments.quiet or len(cases) < 2, file=sys.stderr)

    def report(outcome: CaseOutcome) -> None:
        bar.update(1)
        if outcome.status == "failed":
            bar.write(f"den-extract: error: {outcome.message}", file=sys.stderr)
        else:
            bar.write(f"{outcome.case.case_id}: {outcome.status}, {outcome.rows} rows "
                      f"({outcome.foreground_rows} with tumour) -> {outcome.outputs['npy']}")

    try:
        return run_cohort(cases, arguments.output, settings, resume=arguments.resume, on_case_done=report)
    finally:
        bar.close()


def _summarise(outcomes: list[CaseOutcome]) -> int:
    """Print the closing summary line; return the exit status."""
    counts = {status: sum(outcome.status == status for outcome in outcomes) for status in ("done", "resumed", "failed")}
    print(f"{len(outcomes)} case(s): {counts['done']} done, {counts['resumed']} resumed, {counts['failed']} failed",
          file=sys.stderr)
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
