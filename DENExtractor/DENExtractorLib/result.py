"""The result of one extraction: per-slice features, the foreground rows, the pooled vector, provenance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def pooled_vector(features: np.ndarray, foreground_rows: np.ndarray) -> np.ndarray:
    """The patient-level vector: mean then max of the features over the foreground rows, (8192,) float32."""
    tumour = features[foreground_rows]
    return np.concatenate([tumour.mean(axis=0), tumour.max(axis=0)]).astype(np.float32)
