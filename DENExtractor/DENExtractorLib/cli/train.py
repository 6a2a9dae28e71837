"""``den-train``: learn DEN weights from a labelled cases CSV; the weights go straight into ``den-extract --weights``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import NoReturn

from ..training.config import TRAIN_LAYERS, TrainingConfig
from .logs import LIBRARY_LOGGER, say
from .options import (
    EXIT_OK,
    CommandParser,
    add_common_arguments,
    add_logging_arguments,
    add_settings_arguments,
    exit_with,
    run_command,
    settings_from,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``den-train`` argument parser."""
    defaults = TrainingConfig()
    parser = CommandParser(
        prog="den-train",
        description="Train DEN's weights on your labelled cohort: DEN as extracted plus a softmax head (Adam, "
        "categorical cross-entropy), split by patient (group column) into training, validation (early stopping) and "
        "test patients (scored once), judged on the test patients against chance and a linear-probe baseline. "
        "Writes den_trained.weights.h5 (for den-extract --weights), den_head.npz (for den-score), den_trained.json, "
        "den_trained_card.md, den_trained.png, den_trained_reliability.png, val_predictions.csv and "
        "test_predictions.csv into MODEL_DIR.",
        epilog="example:\n  den-train --cases labels.csv --label-column grade -o model\n"
        "  den-extract seg.nii.gz --weights model/den_trained.weights.h5 -o out",
    )
    parser.add_argument("--cases", type=Path, required=True, metavar="CSV",
                        help="cases CSV (case_id, segmentation[, image], a label column, optional group and split "
                        "columns)")
    parser.add_argument("--label-column", required=True, metavar="NAME", help="the CSV column holding each case's class")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL_DIR", help="output folder (created if needed)")
    add_settings_arguments(parser, "start from these weights (default: bundled den-ref-v1)")
    parser.add_argument("--train-layers", choices=TRAIN_LAYERS, default=defaults.train_layers,
                        help="dense: only the 4096-unit layer and the head learn, for small cohorts (default); all: every layer")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction,
                        help=f"share of each class's patients kept for validation (default {defaults.val_fraction}); "
                        "ignored when the CSV has a 'split' column")
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction,
                        help=f"share of each class's patients kept untouched for the final test (default "
                        f"{defaults.test_fraction}; 0: no test set, no verdict); ignored with a 'split' column")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"at most this many epochs (default {defaults.epochs})")
    parser.add_argument("--patience", type=int, default=defaults.patience,
                        help=f"stop after this many epochs without a lower validation loss (default {defaults.patience})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"slices per step (default {defaults.batch_size})")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help=f"Adam's learning rate (default {defaults.learning_rate:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, the head and the shuffles (default 0)")
    parser.add_argument("--one-case-per-patient", action="store_true",
                        help="every case is a different patient (for a CSV without a 'group' column): without the "
                        "column or this option, cases are taken as independent patients and den-train calls nothing "
                        "better than chance or the baseline")
    parser.add_argument("--model-id", help="model id recorded in provenance (default: den-trained-LABEL-<sha256 prefix>)")
    parser.add_argument("--min-icc", type=float, metavar="X",
                        help="baseline probe on base weights: keep only features whose ICC over the training cases' "
                             "perturbations is at least X (with --robustness)")
    parser.add_argument("--robustness", type=Path, metavar="TABLE",
                        help="den-robustness's den_robustness_icc.csv (or its folder); the ICC is computed again from "
                             "the training cases' outputs there, never from validation or test cases")
    add_common_arguments(parser, "print only errors and the verdict")
    add_logging_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-train``; return the exit status (0 trained, 1 internal error, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    return run_command("den-train", lambda: _train(arguments), debug=arguments.debug,
                       interrupted="interrupted; no training record was written (the slice cache is kept)",
                       verbose=arguments.verbose, log_file=arguments.log_file)


def _train(arguments: argparse.Namespace) -> int:
    """Train with the options given, then print the verdict (when quiet) and where the weights are."""
    from ..training.trainer import train

    config = TrainingConfig(
        settings=settings_from(arguments), train_layers=arguments.train_layers, val_fraction=arguments.val_fraction,
        test_fraction=arguments.test_fraction,
        epochs=arguments.epochs, batch_size=arguments.batch_size, learning_rate=arguments.learning_rate,
        patience=arguments.patience, seed=arguments.seed, model_id=arguments.model_id, min_icc=arguments.min_icc,
        robustness=arguments.robustness,
        one_case_per_patient=arguments.one_case_per_patient,
    )
    result = train(arguments.cases, arguments.label_column, arguments.output, config, on_message=_printer(arguments.quiet))
    if arguments.quiet:
        say(result.record["verdict"]["text"])
    say(f"weights: {result.paths['weights']} (model id {result.record['model_id']}); model card: {result.paths['card']}")
    return EXIT_OK


def _printer(quiet: bool):
    """Print progress lines on stderr, or only exclusions and failures when quiet."""
    def show(text: str) -> None:
        if not quiet or "excluded" in text:
            say(text)
        else:
            logging.getLogger(LIBRARY_LOGGER).info(text)  # --log-file keeps what --quiet hides
    return show



def console_main() -> NoReturn:
    """The ``den-train`` command: :func:`main` on the command line's arguments, ending the process with its status."""
    exit_with(main)


if __name__ == "__main__":
    console_main()
