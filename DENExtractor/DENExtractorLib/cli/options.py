"""What den-extract and den-train share: the settings options, exit statuses and the error-to-exit-status rule."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import difflib
import logging
import os
import signal
import sys
import textwrap
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from .._version import __version__
from ..errors import DENError, describe_error
from ..params import SCHEMA, ParamsFile
from ..settings import MODES, PLANES, SETTING_NAMES, ExtractionSettings
from .logs import LIBRARY_LOGGER, command_logging, say

EXIT_OK, EXIT_CASE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit statuses of both commands: success, a case failed (or an internal error), bad input, interrupted."""

EXIT_STATUSES = (
    "exit status: 0 every case succeeded; 1 a case failed (the others were still done); 2 bad arguments, "
    "weights, cohort folder or output folder (nothing computed); 130 interrupted (Ctrl-C or SIGTERM; finished "
    "cases and the cohort table are kept)"
)


class CommandParser(argparse.ArgumentParser):
    """The commands' argument parser: the description and epilog keep their line breaks (each example on its own
    line), and an unknown option gets a "did you mean" with the nearest real one."""

    def __init__(self, **options: object) -> None:
        """An :class:`argparse.ArgumentParser` with :class:`LineKeepingFormatter`."""
        super().__init__(formatter_class=LineKeepingFormatter, **options)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """argparse's one-line usage error (exit 2), naming the nearest option to each unknown one."""
        if message.startswith("unrecognized arguments:"):
            message += _suggestions(message.split(":", 1)[1].split(), self._option_string_actions)
        super().error(message)


class LineKeepingFormatter(argparse.HelpFormatter):
    """Help text wrapped line by line: a line break in a description or epilog is kept, and an indented line (an
    example command) is printed as it is, never broken."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Wrap each unindented line of ``text`` on its own; keep indented lines whole."""
        return "\n".join(indent + line if line.startswith(" ") else
                         textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         for line in text.splitlines())


SUGGESTION_CUTOFF = 0.75
"""How alike (difflib's ratio) an unknown option must be to a real one to be suggested (``--outptu``: 0.875)."""


def _suggestions(words: list[str], options: Mapping[str, object]) -> str:
    """``" (did you mean --output?)"`` for the unknown options that are near a real one; empty when none is."""
    names = [name for name in options if name.startswith("--")]
    unknown = [word.split("=", 1)[0] for word in words if word.startswith("-")]
    near: list[str] = []
    for word in unknown:
        for match in difflib.get_close_matches(word, names, n=1, cutoff=SUGGESTION_CUTOFF):
            near.append(match if len(unknown) == 1 else f"{match} for {word}")
    return f" (did you mean {', '.join(near)}?)" if near else ""


def add_settings_arguments(parser: argparse.ArgumentParser, weights_help: str) -> None:
    """Add the options that make an :class:`ExtractionSettings`: ``--mode``, ``--plane``, ``--weights``,
    ``--labels``, ``--label-max`` (each None unless given, so a settings file can fill it)."""
    parser.add_argument("--mode", choices=MODES, help="preprocessing (default: reference)")
    parser.add_argument("--plane", choices=PLANES, help="slicing plane, oriented mode only (default: axial)")
    parser.add_argument("--weights", type=Path, metavar="FILE", help=weights_help)
    parser.add_argument("--labels", type=label_list, metavar="L1,L2",
                        help="keep only these label values, e.g. 1,4 (default: all labels)")
    parser.add_argument("--label-max", metavar="V",
                        help="oriented mode: the label value that enters the network as 1, the same in every case "
                        "(default 4, BraTS); 'case' divides by each case's largest label (outputs before this option)")


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--params FILE``, a YAML settings file (see :mod:`DENExtractorLib.params`)."""
    parser.add_argument("--params", type=Path, metavar="YAML",
                        help=f"settings file: {', '.join(SCHEMA)} (checked before any work; an option given here on "
                             "the command line wins; the provenance records the effective settings)")


def settings_from(arguments: argparse.Namespace, params: ParamsFile | None = None) -> ExtractionSettings:
    """The checked settings: each option given on the command line, else the settings file's value, else the
    default; where each came from is kept for the provenance."""
    chosen: dict = {}
    origin = []
    for name in SETTING_NAMES:
        if getattr(arguments, name) is not None:
            chosen[name], source = getattr(arguments, name), "command line"
        elif params is not None and name in params.values:
            chosen[name], source = params.values[name], params.origin
        else:
            continue
        origin.append((name, source))
    return ExtractionSettings(**chosen, origin=tuple(origin))


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-v`` (the library's log records on stderr; ``-vv`` for debug records) and ``--log-file``."""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="also show what the library logs (-vv: debug records too)")
    parser.add_argument("--log-file", type=Path, metavar="FILE",
                        help="append every message and log record, timestamped, to FILE")


def add_common_arguments(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    """Add ``--quiet``, ``--debug`` and ``--version``."""
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def run_command(program: str, body: Callable[[], int], *, debug: bool, interrupted: str, verbose: int = 0,
                log_file: Path | None = None) -> int:
    """Run a command's body and turn what it raises into one line on stderr and an exit status.

    :class:`DENError` (bad input) gives 2; Ctrl-C or SIGTERM gives 130 with the line ``interrupted``; any other
    exception is a bug, reported in one line (with the traceback under ``--debug``), exit 1. ``verbose`` and
    ``log_file``: see :func:`~.logs.command_logging`.
    """
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with command_logging(program, verbose, log_file):
            return _run_body(program, body, debug, interrupted)
    except DENError as error:  # the log file itself cannot be opened
        say(f"{program}: error: {error}", level=logging.ERROR)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _run_body(program: str, body: Callable[[], int], debug: bool, interrupted: str) -> int:
    """The body, its faults turned into one line each (logged too) and an exit status; a Ctrl-C or SIGTERM, even
    one that comes while a fault is being reported, ends as interrupted."""
    try:
        try:
            return body()
        except DENError as error:
            say(f"{program}: error: {error}", level=logging.ERROR)
            return EXIT_BAD_INPUT
        except Exception as error:  # a bug, not bad input: one line unless --debug
            if debug:
                traceback.print_exc()
            logging.getLogger(LIBRARY_LOGGER).debug("internal error", exc_info=True)
            say(f"{program}: internal error: {describe_error(error)} (rerun with --debug)", level=logging.ERROR)
            return EXIT_CASE_FAILED
    except KeyboardInterrupt:
        say(f"{program}: {interrupted}", level=logging.WARNING)
        return EXIT_INTERRUPTED


def exit_with(main: Callable[[], int]) -> NoReturn:
    """A command's process: run ``main`` and end with its exit status as soon as everything it wrote is closed.

    The exit handlers run (log files are flushed and closed there) and stdout and stderr are flushed; the
    interpreter's own tear-down is skipped: once TensorFlow is loaded it takes about 0.7 s, and writes nothing.
    """
    status = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said there
            stream.flush()
    os._exit(status)


def _interrupt(signal_number: int, frame: object) -> None:
    """SIGTERM (a scheduler's time limit, ``kill``, ``timeout``) stops the run the way Ctrl-C does."""
    raise KeyboardInterrupt


def label_list(text: str) -> tuple[int, ...]:
    """Parse ``--labels 1,4`` into (1, 4)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the cohort-at-scale options to ``den-extract``'s parser."""
    group = parser.add_argument_group("cohorts at scale")
    group.add_argument("--cases", type=Path, metavar="CSV",
                       help="run the cases listed in CSV: case_id,segmentation[,image] (pyradiomics' ID,Image,Mask "
                            "work too; relative paths are taken from the CSV's folder; other columns are carried into "
                            "den_cohort.csv)")
    group.add_argument("--jobs", type=positive_whole_number, default=1, metavar="N",
                       help="N worker processes on this machine (default 1); with --scheduler local, N Dask workers")
    add_array_job_arguments(group, "build OUT/den_cohort.csv from the parts' outputs, checking each case; lists "
                                   "missing cases (exit 1 if any)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the cases on a Dask cluster: its scheduler's address HOST:PORT (as 'dask "
                            "scheduler' prints it; the tcp scheme may be given or not), or 'local' for a local cluster "
                            "of --jobs workers (needs Dask: pip install -e '.[dask]' from a checkout)")


def add_array_job_arguments(group: argparse._ArgumentGroup, merge_help: str) -> None:
    """Add ``--num-parts``, ``--part-id`` and ``--merge OUT`` (what the merge does: ``merge_help``), as
    ``den-extract`` and ``den-robustness`` share them."""
    group.add_argument("--num-parts", type=positive_whole_number, metavar="K",
                       help="array job: run only one of K parts of the cohort (case n of the list sorted by id goes "
                            "to part n mod K); then --merge OUT")
    group.add_argument("--part-id", type=int, metavar="I",
                       help="the part to run, 0..K-1 (default: $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX)")
    group.add_argument("--merge", type=Path, metavar="OUT", help=merge_help)


def check_scale_arguments(arguments: argparse.Namespace, parser: argparse.ArgumentParser, cohort_given: bool) -> None:
    """Refuse option combinations that make no sense, with argparse's usual one-line error."""
    if arguments.part_id is not None and arguments.num_parts is None:
        parser.error("--part-id needs --num-parts K")
    if arguments.num_parts is not None and not cohort_given:
        parser.error("--num-parts applies to a cohort: give --cases CSV or --cohort DIR")
    if arguments.scheduler is not None and arguments.scheduler != "local" and arguments.jobs != 1:
        parser.error("--jobs sets the size of --scheduler local; your own cluster has the workers you started")


def positive_whole_number(text: str) -> int:
    """Parse a whole number of at least 1 (``--jobs``, ``--num-parts``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
