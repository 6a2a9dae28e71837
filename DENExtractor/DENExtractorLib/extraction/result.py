"""The result of one extraction: per-slice features, the foreground rows, the pooled vector, provenance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dataframes import require, slice_dataframe


@dataclass
class ExtractionResult:
    """The features of one segmentation.

    ``features`` is (rows, 4096) float32, one row per slice in order; ``foreground_rows`` lists the rows whose
    slice holds foreground; ``pooled`` is the patient-level vector (8192,) = mean then max over foreground rows;
    ``provenance`` records everything needed to reproduce the numbers (JSON-serialisable).
    """

    features: np.ndarray
    foreground_rows: np.ndarray
    pooled: np.ndarray
    provenance: dict

    def to_dataframe(self) -> Any:
        """The per-slice features as a pandas DataFrame (needs pandas): one row per slice, columns ``slice``,
        ``foreground`` (whether the slice holds tumour) and ``feature_0 .. feature_4095`` (float32)."""
        return slice_dataframe(self.features, self.foreground_rows)

    def pooled_series(self) -> Any:
        """The patient-level vector as a pandas Series (needs pandas) indexed ``mean_0 .. mean_4095, max_0 ..
        max_4095``, the names of den_cohort.csv's columns."""
        pandas = require("pandas", "a pooled Series")
        half = self.pooled.size // 2
        names = [f"mean_{index}" for index in range(half)] + [f"max_{index}" for index in range(half)]
        return pandas.Series(self.pooled, index=names, name="pooled")


def pooled_vector(features: np.ndarray, foreground_rows: np.ndarray) -> np.ndarray:
    """The patient-level vector: mean then max of the features over the foreground rows, (8192,) float32."""
    tumour = features[foreground_rows]
    return np.concatenate([tumour.mean(axis=0), tumour.max(axis=0)]).astype(np.float32)
