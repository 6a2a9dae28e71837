"""The commands' messages: today's lines on stderr (and stdout), the library's log records with ``-v``, and
everything, timestamped, in ``--log-file``.

The library logs through :mod:`logging` under the ``DENExtractorLib`` logger and prints nothing; a Python user
sees its records with ``logging.basicConfig(level=logging.INFO)``. Only this layer writes to the terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DENError, describe_error

LIBRARY_LOGGER = "DENExtractorLib"
PRINTED = "den_printed"
"""Marks a record of a line the command already printed, so the console does not show it twice."""
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_command_logger = logging.getLogger(f"{LIBRARY_LOGGER}.cli")


def say(text: str, *, level: int = logging.INFO, write: Callable[[str], object] | None = None) -> None:
    """Show a line as the commands always have (on stderr, or through ``write``: a progress bar's, stdout's) and
    record it in the log file."""
    if write is None:
        print(text, file=sys.stderr)
    else:
        write(text)
    _command_logger.log(level, text, extra={PRINTED: True})


class _ConsoleHandler(logging.Handler):
    """Library records on stderr above any progress bar (``-v``), never a line the command printed itself."""

    def __init__(self, program: str, level: int) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter(f"{program}: %(levelname)s: %(message)s"))
        self.addFilter(lambda record: not getattr(record, PRINTED, False))

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record with tqdm's writer, which keeps a progress bar intact."""
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never stop a run
            self.handleError(record)


@contextmanager
def command_logging(program: str, verbose: int = 0, log_file: Path | None = None) -> Iterator[None]:
    """While a command runs: with ``verbose`` 1 (``-v``) the library's INFO records on stderr, 2 (``-vv``) DEBUG
    too; with ``log_file`` every record (DEBUG and up, the command's own lines included) appended to that file.
    Raises :class:`DENError` when the log file cannot be opened."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    handlers: list[logging.Handler] = []
    if verbose:
        handlers.append(_ConsoleHandler(program, logging.INFO if verbose == 1 else logging.DEBUG))
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        except OSError as error:
            raise DENError(log_file, f"cannot write the log file ({describe_error(error)})") from None
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    previous_level = logger.level
    if handlers:
        logger.setLevel(min(handler.level for handler in handlers))
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous_level)
