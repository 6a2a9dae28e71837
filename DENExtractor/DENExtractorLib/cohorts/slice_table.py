"""The per-slice table of a cohort (``--slice-table``): one row per case and slice, the long format a
statistician fits mixed models on.

Columns: ``case_id``, ``slice`` (the feature matrix's row), ``foreground`` (``True`` where the slice holds tumour)
and ``feature_0 .. feature_4095``. Written as CSV (``den_slices.csv``, floats always with a decimal point, a case id
that a spreadsheet would run as a formula written with a leading apostrophe, as in den_cohort.csv) or, with
``--parquet``, as Parquet (``den_slices.parquet``, float32, one row group per case). Only finished cases are
listed. Memory is one case's matrix at a time, read from the outputs already written; the file is written
atomically.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..dataframes import float_cell, require, slice_columns, slice_dataframe
from ..network.architecture import FEATURE_COUNT
from ..outputs.atomic import write_atomically
from ..outputs.record import read_record
from .cases import CaseOutcome
from .table import spreadsheet_safe

SLICE_TABLE_NAME, SLICE_PARQUET_NAME = "den_slices.csv", "den_slices.parquet"


def write_slice_table(outcomes: list[CaseOutcome], path: str | Path, *, parquet: bool = False) -> Path:
    """Write the per-slice table of the finished cases (CSV, or Parquet with ``parquet``) atomically."""
    if parquet:
        return write_atomically(path, lambda temporary: _write_parquet(outcomes, temporary))
    return write_atomically(path, lambda temporary: _write_csv(outcomes, temporary))


def _finished(outcomes: list[CaseOutcome]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(case id, feature matrix, foreground rows) of each finished case, read from its written outputs."""
    for outcome in outcomes:
        if outcome.pooled is None:
            continue
        features = np.load(outcome.outputs["npy"], mmap_mode="r", allow_pickle=False)
        yield outcome.case.case_id, features, read_record(outcome.outputs["json"]).foreground_rows


def _write_csv(outcomes: list[CaseOutcome], temporary: Path) -> None:
    """The CSV form, one row per slice."""
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", *slice_columns(FEATURE_COUNT)])
        for case_id, features, foreground_rows in _finished(outcomes):
            foreground = set(foreground_rows.tolist())
            for row in range(features.shape[0]):
                writer.writerow([spreadsheet_safe(case_id), row, row in foreground,
                                 *(float_cell(value) for value in features[row])])


def _write_parquet(outcomes: list[CaseOutcome], temporary: Path) -> None:
    """The Parquet form, one row group per case."""
    pyarrow = require("pyarrow", "a Parquet table")
    parquet = require("pyarrow.parquet", "a Parquet table")
    writer = None
    try:
        for case_id, features, foreground_rows in _finished(outcomes):
            frame = slice_dataframe(features, foreground_rows)
            frame.insert(0, "case_id", case_id)
            table = pyarrow.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = parquet.ParquetWriter(str(temporary), table.schema)
            writer.write_table(table)
        if writer is None:  # no finished case: an empty table with the columns
            empty = slice_dataframe(np.zeros((0, FEATURE_COUNT), dtype=np.float32), np.zeros(0, dtype=np.int64))
            empty.insert(0, "case_id", np.array([], dtype=object))
            parquet.write_table(pyarrow.Table.from_pandas(empty, preserve_index=False), str(temporary))
    finally:
        if writer is not None:
            writer.close()
