"""Running the network over a slice stack: foreground slices in batches, the empty input once."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import ExtractionCancelled
from ..network.architecture import FEATURE_COUNT
from ..network.model import LoadedModel
from ..network.runtime import concurrent_batches
from .preprocessing import SliceStack

BATCH_SIZE = 32
"""Most slices per network call: large enough for fast matrix products, small enough to keep memory low."""

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


def run_network(
    model: LoadedModel,
    stack: SliceStack,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    source: str = "",
) -> np.ndarray:
    """Compute the (rows, 4096) features of a slice stack: foreground slices in batches, each computed only where
    it differs from the empty slice (:mod:`windowed`); the empty slice's row is computed once per model.

    The batches depend on the stack alone (:func:`batch_bounds`); up to :func:`runtime.concurrent_batches` of them
    run at once, each kernel on one thread, so the features are the same whatever the lanes. Progress is reported
    batch by batch in order; a cancel is seen before each batch is started and after each one ends.
    """
    network = model.windowed()
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
    features = np.empty((stack.row_count, FEATURE_COUNT), dtype=np.float32)
    features[:] = network.empty_row
    step(1)
    bounds = batch_bounds(len(stack.foreground_rows))
    lanes = min(concurrent_batches(), len(bounds))
    if lanes <= 1:
        for start, stop in bounds:
            features[stack.foreground_rows[start:stop]] = network.predict(stack.batch(start, stop))
            step(stop - start)
        return features
    in_flight: deque[tuple[int, int, Future]] = deque()

    def finish_oldest() -> None:
        start, stop, future = in_flight.popleft()
        features[stack.foreground_rows[start:stop]] = future.result()
        step(stop - start)

    with ThreadPoolExecutor(lanes, thread_name_prefix="den-batch") as pool:
        try:
            for start, stop in bounds:
                if len(in_flight) == lanes:
                    finish_oldest()
                step(0)
                in_flight.append((start, stop, pool.submit(network.predict, stack.batch(start, stop))))
            while in_flight:
                finish_oldest()
        finally:
            for _, _, future in in_flight:
                future.cancel()
    return features


def batch_bounds(count: int, most: int = BATCH_SIZE) -> list[tuple[int, int]]:
    """Split ``count`` slices into the fewest batches of at most ``most``, of near-equal sizes.

    Equal sizes never leave a batch of one slice behind (unless ``count`` is 1): TensorFlow computes a batch of
    one with another convolution kernel, which would move that slice's features by about 1e-7.
    """
    batches = -(-count // most)
    edges = [round(index * count / batches) for index in range(batches + 1)] if batches else [0]
    return list(itertools.pairwise(edges))
