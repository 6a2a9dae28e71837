"""``den-score``: apply a classifier ``den-train`` saved to new cases; class probabilities per case into a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from .options import EXIT_CASE_FAILED, EXIT_OK, CommandParser, add_common_arguments, exit_with, run_command


def build_parser() -> argparse.ArgumentParser:
    """The ``den-score`` argument parser."""
    parser = CommandParser(
        prog="den-score",
        description="Score cases with a classifier den-train saved (trunk den_trained.weights.h5 plus head "
        "den_head.npz, checked against den_trained.json): preprocessing and features exactly as den-extract, then "
        "the head on every tumour slice, averaged per case. Writes the table and, beside it, TABLE.json "
        "(provenance).",
        epilog="example:\n  den-score --model model --cases new_cases.csv -o scores.csv\n\nexit status: 0 every case "
        "scored; 1 a case could not be scored (the others are still in the table); 2 bad arguments, model or cases "
        "CSV (nothing scored); 130 interrupted",
    )
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR", help="den-train's output folder")
    parser.add_argument("--cases", type=Path, required=True, metavar="CSV",
                        help="cases CSV as den-extract --cases reads it (case_id, segmentation[, image])")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="TABLE", help="the scores table (.csv)")
    add_common_arguments(parser, "print only errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-score``; return the exit status (0 every case scored, 1 a case could not be scored or an internal
    error, 2 bad input, 130 interrupted)."""
    arguments = build_parser().parse_args(argv)
    return run_command("den-score", lambda: _score(arguments), debug=arguments.debug,
                       interrupted="interrupted; no scores table was written")


def _score(arguments: argparse.Namespace) -> int:
    """Score every case and say where the table is."""
    from ..training.scoring import score_cohort

    def report(case_id: str, status: str) -> None:
        if not arguments.quiet or status != "scored":
            print(f"{case_id}: {status}", file=sys.stderr)

    scores = score_cohort(arguments.model, arguments.cases, arguments.output, on_case=report)
    print(f"scores: {scores.table}" + (f" ({len(scores.failed)} case(s) could not be scored)" if scores.failed else ""),
          file=sys.stderr)
    return EXIT_CASE_FAILED if scores.failed else EXIT_OK



def console_main() -> NoReturn:
    """The ``den-score`` command: :func:`main` on the command line's arguments, ending the process with its status."""
    exit_with(main)


if __name__ == "__main__":
    console_main()
