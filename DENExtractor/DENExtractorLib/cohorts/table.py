"""The cohort table, den_cohort.csv: one row of pooled features (and carried-through columns) per case.

Columns, in order: ``case_id``, the cases CSV's carried-through columns, ``status``, ``message``, ``rows``,
``foreground_rows``, the settings of the row (:data:`SETTINGS_COLUMNS`: model id, weights sha256, mode, plane,
labels kept, whether an MRI was used, the input paths), then ``mean_0 .. mean_4095`` and ``max_0 .. max_4095``.
Every feature cell is written as a float (``0.0``, never ``0``), so ``pandas.read_csv`` types those columns
float64. The same rows are available as a pandas DataFrame (:func:`cohort_dataframe`) and a Parquet file
(:func:`write_cohort_parquet`).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dataframes import float_cell, require
from ..network.architecture import FEATURE_COUNT
from ..outputs.atomic import write_atomically
from ..settings import ExtractionSettings
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


COHORT_PARQUET_NAME = "den_cohort.parquet"
SETTINGS_COLUMNS = ("model_id", "weights_sha256", "mode", "plane", "labels", "image_mode", "segmentation_path",
                    "image_path")
"""The per-row settings columns: which model and weights, mode, plane (empty in reference mode), the labels kept
(``all`` or ``1,4``), whether an MRI was used (``True``/``False``), and the absolute input paths."""

FEATURE_COLUMNS = [f"{kind}_{index}" for kind in ("mean", "max") for index in range(FEATURE_COUNT)]


@dataclass(frozen=True)
class CohortRows:
    """What a cohort table holds: the header, and per case its cells before the features and its pooled vector
    (None for a failed case)."""

    header: list[str]
    leading: list[list[Any]]
    pooled: list[np.ndarray | None]


def cohort_rows(
    outcomes: list[CaseOutcome],
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
    settings: ExtractionSettings | None = None,
) -> CohortRows:
    """The table's rows as Python values (``rows`` None for a failed case); ``settings``: the run's (default:
    the default settings), each row's labels being its own (a cases CSV's ``Label``) where it has them."""
    carried = carried or {}
    settings = settings or ExtractionSettings()
    identity = settings.weights_identity()
    header = ["case_id", *carried_columns, "status", "message", "rows", "foreground_rows", *SETTINGS_COLUMNS,
              *FEATURE_COLUMNS]
    leading, pooled = [], []
    for outcome in outcomes:
        case = outcome.case
        finished = outcome.pooled is not None
        labels = case.labels if case.labels is not None else settings.labels
        cells = carried.get(case.case_id, {})
        leading.append([
            case.case_id, *(cells.get(name, "") for name in carried_columns), outcome.status, outcome.message,
            outcome.rows if finished else None, outcome.foreground_rows if finished else None,
            identity.model_id, identity.sha256, settings.mode,
            settings.effective_plane if settings.mode == "oriented" else "",
            "all" if labels is None else ",".join(str(label) for label in labels),
            case.image is not None, _absolute(case.segmentation), _absolute(case.image) if case.image else "",
        ])
        pooled.append(outcome.pooled if finished else None)
    return CohortRows(header, leading, pooled)


def write_cohort_table(
    outcomes: list[CaseOutcome],
    path: str | Path,
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
    settings: ExtractionSettings | None = None,
) -> Path:
    """Write the cohort CSV atomically (columns: see the module docstring); ``carried_columns`` (a cases CSV's own
    columns) follow the case id, each case's cells taken from ``carried[case_id]``."""
    table = cohort_rows(outcomes, carried_columns, carried, settings)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.header)
            for leading, pooled in zip(table.leading, table.pooled, strict=True):
                features = [float_cell(value) for value in pooled] if pooled is not None else []
                writer.writerow([spreadsheet_safe(_text(cell)) for cell in leading] + features)

    return write_atomically(path, write)


def cohort_dataframe(
    outcomes: list[CaseOutcome],
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
    settings: ExtractionSettings | None = None,
) -> Any:
    """The cohort table as a pandas DataFrame (needs pandas): the CSV's columns, features float32 (NaN for a
    failed case), ``rows`` and ``foreground_rows`` nullable integers, ``image_mode`` bool, and each carried column
    typed as its cells are written (``Age`` 63 an integer, ``weight`` 71.5 a float, ``site`` text)."""
    pandas = require("pandas", "a cohort DataFrame")
    table = cohort_rows(outcomes, carried_columns, carried, settings)
    leading_names = table.header[: -len(FEATURE_COLUMNS)]
    frame = pandas.DataFrame(table.leading, columns=leading_names)
    for name in ("rows", "foreground_rows"):
        frame[name] = frame[name].astype("Int64")
    frame["image_mode"] = frame["image_mode"].astype(bool)
    for name in carried_columns:
        frame[name] = _typed_column(pandas, frame[name])
    features = np.full((len(table.pooled), len(FEATURE_COLUMNS)), np.nan, dtype=np.float32)
    for index, pooled in enumerate(table.pooled):
        if pooled is not None:
            features[index] = pooled
    return pandas.concat([frame, pandas.DataFrame(features, columns=FEATURE_COLUMNS)], axis=1)


def write_cohort_parquet(
    outcomes: list[CaseOutcome],
    path: str | Path,
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
    settings: ExtractionSettings | None = None,
) -> Path:
    """Write the cohort table as Parquet (needs pandas and pyarrow) atomically; it reads back with
    ``pandas.read_parquet`` equal to :func:`cohort_dataframe`."""
    frame = cohort_dataframe(outcomes, carried_columns, carried, settings)
    require("pyarrow", "a Parquet table")
    return write_atomically(path, lambda temporary: frame.to_parquet(temporary, engine="pyarrow", index=False))


INTEGER_TEXT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
DECIMAL_TEXT = re.compile(r"[+-]?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][+-]?[0-9]+)?")
"""Cells that are numbers as written: no leading zero (``007`` is a code, kept as text), no words."""


def _typed_column(pandas: Any, column: Any) -> Any:
    """A carried column as the CSV's numbers read back: nullable integers (``Int64``) where every non-empty cell is
    a whole number, floats where every one is a number, else text; an empty cell is missing (``<NA>``/NaN)."""
    cells = [str(cell) for cell in column if cell not in ("", None)]
    if cells and all(INTEGER_TEXT.fullmatch(cell) for cell in cells):
        return pandas.to_numeric(column.replace("", None)).astype("Int64")
    if cells and all(DECIMAL_TEXT.fullmatch(cell) and any(c.isdigit() for c in cell) for cell in cells):
        return pandas.to_numeric(column.replace("", None)).astype("float64")
    return column


def _text(cell: Any) -> str:
    """A leading cell as CSV text: empty for a missing count."""
    return "" if cell is None else str(cell)


def _absolute(path: Path) -> str:
    """An input path as the table records it: absolute and without ``.`` or ``..`` parts, so rows from different
    folders compare (empty for a cases CSV row that named none)."""
    return "" if Path(path) == Path() else os.path.abspath(path)

