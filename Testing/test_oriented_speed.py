"""Oriented mode slices a volume without copying it: the same inputs whatever the volume's memory order.

(Speed itself is measured by ``benchmarks/bench_extract.py``, not asserted here.)
"""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib import segmentation_from_array
from DENExtractorLib.extraction.preprocessing import _take, preprocess

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_slice_is_a_view_with_the_documented_axes(axis):
    volume = np.asfortranarray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    index = 2
    taken = _take(volume, axis, index)
    assert np.shares_memory(taken, volume)
    plane = np.moveaxis(volume, axis, 0)[index]  # (first remaining axis, second remaining axis)
    assert np.array_equal(taken[-1, :], plane[:, 0])  # bottom row: the second remaining axis' first index
    assert np.array_equal(taken[:, 0], plane[0, ::-1])  # columns follow the first remaining axis
    assert np.array_equal(taken, np.rot90(np.take(np.ascontiguousarray(volume), index, axis=axis)))


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_oriented_inputs_do_not_depend_on_memory_order(plane):
    generator = np.random.default_rng(2)
    labels = np.zeros((30, 26, 22), dtype=np.uint8)
    labels[8:20, 5:18, 4:15] = generator.integers(0, 5, size=(12, 13, 11))
    affine = np.diag([-0.9, -1.1, 2.5, 1.0])
    stacks = [
        preprocess(segmentation_from_array(order(labels), affine, "case"), mode="oriented", plane=plane)
        for order in (np.ascontiguousarray, np.asfortranarray)
    ]
    assert np.array_equal(stacks[0].foreground_rows, stacks[1].foreground_rows)
    assert np.array_equal(stacks[0].resized, stacks[1].resized)
    assert stacks[0].resized.max() > 0
