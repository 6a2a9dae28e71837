"""The cohort table, den_cohort.csv: one row of pooled features (and carried-through columns) per case."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..network.architecture import FEATURE_COUNT
from ..outputs.atomic import write_atomically
from .cases import CaseOutcome

COHORT_TABLE_NAME = "den_cohort.csv"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's CSV-injection list)."""


def spreadsheet_safe(cell: str) -> str:
    """A text cell as spreadsheets will show it, never run it: a cell starting with ``= + - @`` (or a tab or
    carriage return) that is not a number gets a leading apostrophe (``'=cmd|...``); numbers such as ``-1.5`` are
    kept as they are."""
    text = str(cell)
    if not text.startswith(FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def write_cohort_table(
    outcomes: list[CaseOutcome],
    path: str | Path,
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write the cohort CSV atomically: case id, status, message, rows, foreground rows, pooled mean and max.

    ``carried_columns`` (a cases CSV's own columns) follow the case id, each case's cells taken from
    ``carried[case_id]``.
    """
    carried = carried or {}
    header = ["case_id", *carried_columns, "status", "message", "rows", "foreground_rows"]
    header += [f"mean_{index}" for index in range(FEATURE_COUNT)] + [f"max_{index}" for index in range(FEATURE_COUNT)]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for outcome in outcomes:
                pooled = [format(float(value), ".9g") for value in outcome.pooled] if outcome.pooled is not None else []
                counts = [outcome.rows, outcome.foreground_rows] if outcome.pooled is not None else ["", ""]
                cells = carried.get(outcome.case.case_id, {})
                extra = [cells.get(name, "") for name in carried_columns]
                writer.writerow([spreadsheet_safe(cell) for cell in (outcome.case.case_id, *extra, outcome.status,
                                                                     outcome.message)] + [*counts, *pooled])

    return write_atomically(path, write)
