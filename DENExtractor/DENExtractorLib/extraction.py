"""Running the network over a slice stack: foreground slices in batches, the empty input once, then pooling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .architecture import FEATURE_COUNT, INPUT_SHAPE
from .errors import ExtractionCancelled
from .network import LoadedModel
from .preprocessing import SliceStack

BATCH_SIZE = 16
"""Slices per network call: large enough for fast matrix products, small enough to keep memory low."""

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


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


def run_network(
    model: LoadedModel,
    stack: SliceStack,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    source: str = "",
) -> np.ndarray:
    """Compute the (rows, 4096) features of a slice stack: foreground slices in batches, the empty input once."""
    computed = len(stack.foreground_rows) + 1
    done = 0

    def step(count: int) -> None:
        nonlocal done
        if cancel is not None and cancel():
            raise ExtractionCancelled(source)
        done += count
        if progress is not None:
            progress(done, computed)

    step(0)
    empty_row = model.predict(np.zeros((1, *INPUT_SHAPE), dtype=np.float32))[0]
    features = np.empty((stack.row_count, FEATURE_COUNT), dtype=np.float32)
    features[:] = empty_row
    step(1)
    for start in range(0, len(stack.foreground_rows), BATCH_SIZE):
        stop = min(start + BATCH_SIZE, len(stack.foreground_rows))
        features[stack.foreground_rows[start:stop]] = model.predict(stack.batch(start, stop))
        step(stop - start)
    return features
