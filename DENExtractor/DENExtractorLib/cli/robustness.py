"""``den-robustness``: which DEN features survive realistic changes of the contour, and which restate the tumour's
size, on a cohort, in one command.

:func:`main` reads as the run's phases: check the options and the plan (no TensorFlow), gather the cases as
``den-extract`` does, run every case's perturbations with ``den-extract``'s runners, then pool the finished cases
into the ICC and confound tables and pictures.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
from pathlib import Path
from typing import NoReturn

from ..cohorts.cases import CaseOutcome, cases_from_files, find_cases
from ..cohorts.runners import entries_from_cases, entries_from_csv, in_case_order, run_entries
from ..dataframes import require
from ..errors import DENError
from ..extraction.extractor import DENExtractor
from ..outputs.atomic import remove_leftover_partials
from ..outputs.output_folder import prepare_output_folder, removed_if_left_empty
from ..params import read_params
from ..robustness.array_parts import finished_cases, read_manifest, share_for_this_part
from ..robustness.cohort_summary import CONFOUND_TABLE, ICC_TABLE, SUMMARY_NAME, pool_cases, write_cohort_figures
from ..robustness.perturbations import KINDS, PerturbationPlan
from ..robustness.perturbed_case import run_perturbed_case
from ..robustness.reliability import DEFAULT_FORM, ICC_FORMS
from .logs import say
from .options import (
    EXIT_CASE_FAILED,
    EXIT_OK,
    add_array_job_arguments,
    add_common_arguments,
    add_logging_arguments,
    add_params_argument,
    add_settings_arguments,
    check_scale_arguments,
    exit_with,
    positive_whole_number,
    run_command,
    settings_from,
)

MIN_CASES_FOR_FIGURES = 3
"""Cases needed before the ICC and the correlations mean anything (two points always lie on a line)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``den-robustness`` argument parser."""
    defaults = PerturbationPlan()
    parser = argparse.ArgumentParser(
        prog="den-robustness",
        description="Robustness of DEN's pooled features to segmentation variability, and the tumour-volume "
        "confound: every case's segmentation is perturbed (dilated, eroded, rotated, translated, its contour "
        "randomised; a fixed, seeded plan), each perturbed input extracted with the same settings and weights; "
        f"then the ICC of every feature across cases ({ICC_TABLE}.csv, .png) and each feature's correlation with "
        f"the tumour volume and slice count ({CONFOUND_TABLE}.csv, .png), summarised in {SUMMARY_NAME}. Each case "
        "writes CASE_robustness.npy (pooled vectors) and CASE_robustness.json (how to rebuild every perturbed input).",
        epilog="Example: den-robustness --cohort DATA --pattern '{id}/OTMultiClass.nii.gz' -o robustness --jobs 2 "
        "--resume && den-train --cases labels.csv --label-column grade --min-icc 0.75 --robustness "
        f"robustness/{ICC_TABLE}.csv -o model",
    )
    parser.add_argument("segmentations", nargs="*", type=Path, metavar="SEG", help="segmentation files")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT",
                        help="output folder (created if needed); required, except with --merge")
    parser.add_argument("--image", type=Path, action="append", metavar="MRI",
                        help="image mode: the MRI of each SEG, in order (the segmentation is perturbed, the MRI not)")
    add_settings_arguments(parser, "Keras .weights.h5 or .keras file (default: bundled den-ref-v1)")
    add_params_argument(parser)
    cases = parser.add_argument_group("cases, as den-extract takes them")
    cases.add_argument("--cohort", type=Path, metavar="DIR", help="every case under DIR matching --pattern")
    cases.add_argument("--pattern", default="{id}.nii.gz", help="case files relative to DIR (default: '{id}.nii.gz')")
    cases.add_argument("--image-pattern", metavar="PATTERN", help="image mode in a cohort: each case's MRI")
    cases.add_argument("--cases", type=Path, metavar="CSV", help="the cases listed in CSV: case_id,segmentation[,image]")
    plan = parser.add_argument_group("perturbations (the same for every case)")
    plan.add_argument("--kinds", type=_kind_list, default=defaults.kinds, metavar="K1,K2",
                      help=f"kinds of perturbation, among {','.join(KINDS)} (default: all); the original is always "
                           "one of the inputs")
    plan.add_argument("--rotation-degrees", type=float, default=defaults.rotation_degrees, metavar="DEG",
                      help=f"rotate: +- DEG about each RAS axis, through the tumour centroid (default "
                           f"{defaults.rotation_degrees:g})")
    plan.add_argument("--translation-mm", type=float, default=defaults.translation_mm, metavar="MM",
                      help=f"translate: +- MM along each RAS axis (default {defaults.translation_mm:g})")
    plan.add_argument("--contours", type=int, default=defaults.contours, metavar="N",
                      help=f"contour: N randomised contours (default {defaults.contours})")
    plan.add_argument("--contour-cell-mm", type=float, default=defaults.contour_cell_mm, metavar="MM",
                      help=f"contour: supervoxel spacing (default {defaults.contour_cell_mm:g})")
    plan.add_argument("--seed", type=int, default=defaults.seed,
                      help="seed of the first randomised contour (the next ones use SEED+1, ...; default 0)")
    figures = parser.add_argument_group("figures")
    figures.add_argument("--icc-form", choices=ICC_FORMS, default=DEFAULT_FORM,
                         help="1,1: one-way random, absolute agreement (Zwanenburg et al., default); 2,1: two-way "
                              "random, absolute agreement; 3,1: two-way mixed, consistency")
    figures.add_argument("--parquet", action="store_true", help="also write both tables as Parquet (needs pandas, pyarrow)")
    scale = parser.add_argument_group("running")
    scale.add_argument("--jobs", type=positive_whole_number, default=1, metavar="N",
                       help="N worker processes (default 1); with --scheduler local, N Dask workers")
    scale.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the cases on a Dask cluster: tcp://HOST:PORT, or 'local'")
    scale.add_argument("--resume", action="store_true",
                       help="reuse cases whose outputs are complete and made from the same inputs, settings and plan")
    add_array_job_arguments(scale, "pool every case the parts finished in OUT into the tables and pictures (a part "
                                   "draws none), checking each against the parts' manifest; lists the cases missing "
                                   "(exit 1 if any)")
    add_common_arguments(parser, "print only errors and the summary")
    add_logging_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``den-robustness``; return the exit status (0 done, 1 a case failed, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    return run_command("den-robustness", lambda: _run(arguments, parser), debug=arguments.debug,
                       interrupted="interrupted; finished cases are kept (rerun with --resume)",
                       verbose=arguments.verbose, log_file=arguments.log_file)


def _run(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The phases: options and plan, cases (this part's, in an array job), perturbed extractions, figures (or, with
    --merge, the parts' finished cases pooled), summary."""
    _check_options(arguments, parser)
    if importlib.util.find_spec("scipy") is None:
        raise DENError("scipy", "not installed; den-robustness needs it: pip install -e '.[robustness]' from a "
                                "DENExtractor checkout")
    if arguments.parquet:
        require("pandas", "--parquet")
        require("pyarrow", "--parquet")
    if arguments.merge is not None:
        return _merge(arguments.merge, arguments)
    params = read_params(arguments.params) if arguments.params is not None else None
    settings = settings_from(arguments, params)
    plan = PerturbationPlan(arguments.kinds, arguments.rotation_degrees, arguments.translation_mm, arguments.contours,
                            arguments.contour_cell_mm, arguments.seed)
    with removed_if_left_empty(arguments.output):
        output = prepare_output_folder(arguments.output, remove_partials=arguments.num_parts is None)
        extractor = DENExtractor(settings)
        entries = _entries(arguments)
        part = None
        if arguments.num_parts is not None:
            entries, part = share_for_this_part(entries, output, settings, plan, num_parts=arguments.num_parts,
                                                part_id=arguments.part_id)
        outcomes: list[CaseOutcome] = []

        def report(outcome: CaseOutcome) -> None:
            outcomes.append(outcome)
            if outcome.status == "failed":
                say(f"den-robustness: error: {outcome.message}", level=logging.ERROR)
            elif not arguments.quiet:
                say(f"{outcome.case.case_id}: {outcome.status}, {outcome.rows} inputs "
                    f"({outcome.foreground_rows} tumour slices) -> {outcome.outputs['npy']}")

        say(f"{len(entries)} case(s) x {len(plan.perturbations())} inputs each: "
            f"{', '.join(member.name for member in plan.perturbations())}")
        try:
            run_entries(entries, output, extractor, resume=arguments.resume, png=False, jobs=arguments.jobs,
                        scheduler=arguments.scheduler, on_case_done=report,
                        job=functools.partial(run_perturbed_case, plan=plan))
        finally:
            if part is None:  # another part may be writing into the folder
                remove_leftover_partials(output)  # those of workers stopped mid-case
        finished = [outcome.case.case_id for outcome in in_case_order(outcomes, entries)
                    if outcome.status != "failed"]
        if part is None:
            _figures(output, finished, arguments)
        else:
            say(f"part {part} of {arguments.num_parts}: {len(finished)} of {len(entries)} case(s) finished; when "
                f"every part has run: den-robustness --merge {output}")
        failed = len(outcomes) - len(finished)
        return EXIT_CASE_FAILED if failed else EXIT_OK


def _merge(folder: Path, arguments: argparse.Namespace) -> int:
    """``den-robustness --merge OUT``: pool the cases the parts finished into the tables and pictures; one line per
    case missing (exit 1 if any)."""
    manifest = read_manifest(folder)
    finished, missing = finished_cases(folder, manifest)
    for line in missing:
        say(f"den-robustness: error: {line}", level=logging.ERROR)
    say(f"{len(manifest.cohort.entries)} case(s) in {manifest.cohort.num_parts} part(s): {len(finished)} finished, "
        f"{len(missing)} missing")
    _figures(folder, [case.case_id for case in finished], arguments)
    return EXIT_CASE_FAILED if missing else EXIT_OK


def _check_options(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse option combinations that make no sense, with argparse's usual one-line error."""
    sources = [bool(arguments.segmentations), arguments.cohort is not None, arguments.cases is not None]
    if arguments.merge is not None:
        if any(sources) or arguments.output is not None or arguments.num_parts is not None:
            parser.error("--merge OUT takes the output folder of the parts, and nothing else to run")
        return
    if sum(sources) != 1:
        parser.error("give segmentation files, or --cohort DIR, or --cases CSV")
    if arguments.output is None:
        parser.error("the following arguments are required: -o/--output")
    check_scale_arguments(arguments, parser, cohort_given=arguments.cohort is not None or arguments.cases is not None)


def _entries(arguments: argparse.Namespace) -> list:
    """The cases the options name, found as ``den-extract`` finds them."""
    if arguments.cases is not None:
        if arguments.image or arguments.image_pattern:
            raise DENError("--image", "with --cases, each case's MRI is the CSV's image column")
        return entries_from_csv(arguments.cases)[0]
    if arguments.cohort is not None:
        return entries_from_cases(find_cases(arguments.cohort, arguments.pattern, arguments.image_pattern).cases)
    return entries_from_cases(cases_from_files(arguments.segmentations, arguments.image))


def _figures(output: Path, finished: list[str], arguments: argparse.Namespace) -> None:
    """Pool the finished cases into the tables and pictures, and print the summary lines (or why there are none)."""
    if len(finished) < MIN_CASES_FOR_FIGURES:
        say(f"den-robustness: {len(finished)} finished case(s): the ICC and the correlations need at least "
            f"{MIN_CASES_FOR_FIGURES}; the cases' outputs are in {output}")
        return
    record = write_cohort_figures(output, pool_cases(output, finished), form=arguments.icc_form,
                                  parquet=arguments.parquet)
    for line in record["summary"]:
        say(line)
    say(f"tables and pictures: {output / (ICC_TABLE + '.csv')}, {output / (CONFOUND_TABLE + '.csv')} (and .png); "
        f"summary: {output / SUMMARY_NAME}")


def _kind_list(text: str) -> tuple[str, ...]:
    """Parse ``--kinds dilate,erode`` (each checked by the plan)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def console_main() -> NoReturn:
    """The ``den-robustness`` command: :func:`main` on the command line's arguments, ending the process with its
    status."""
    exit_with(main)


if __name__ == "__main__":
    console_main()
