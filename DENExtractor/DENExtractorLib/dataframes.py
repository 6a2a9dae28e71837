"""pandas and pyarrow, imported on first use: tables as DataFrames and Parquet files are optional extras.

Install them from a checkout with ``pip install -e '.[tables]'`` (or ``pip install pandas pyarrow``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from .errors import DENError

TABLES_HINT = "pip install -e '.[tables]' from a DENExtractor checkout (or pip install pandas pyarrow)"


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (``pandas``, ``pyarrow.parquet``...) or raise one-line :class:`DENError` saying how to
    install it; ``what`` names the feature that needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DENError(what, f"needs {module.split('.')[0]}, which is not installed: {TABLES_HINT}") from None


def float_cell(value: float) -> str:
    """A float as CSV text that every reader types as a float: 9 significant digits (float32 round-trips), and a
    decimal point even for whole values (``0.0``, not ``0``, so pandas does not read the column as integers)."""
    text = format(float(value), ".9g")
    return text if any(character in text for character in ".ein") else f"{text}.0"


def slice_columns(feature_count: int) -> list[str]:
    """The per-slice table's columns after the case id: ``slice``, ``foreground``, ``feature_0 ..``."""
    return ["slice", "foreground", *(f"feature_{index}" for index in range(feature_count))]


def slice_dataframe(features: np.ndarray, foreground_rows: np.ndarray) -> Any:
    """One row per slice (needs pandas): ``slice`` (the row number), ``foreground`` (whether it holds tumour) and
    the slice's features, float32."""
    pandas = require("pandas", "a per-slice DataFrame")
    foreground = np.zeros(features.shape[0], dtype=bool)
    foreground[np.asarray(foreground_rows, dtype=np.int64)] = True
    names = slice_columns(features.shape[1])
    frame = pandas.DataFrame(np.asarray(features, dtype=np.float32), columns=names[2:])
    frame.insert(0, "foreground", foreground)
    frame.insert(0, "slice", np.arange(features.shape[0], dtype=np.int32))
    return frame
