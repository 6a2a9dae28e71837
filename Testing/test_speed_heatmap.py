"""The heatmap picture drawn without matplotlib: what it shows, where, in which colours."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from DENExtractorLib.outputs.heatmap import COLOUR_BAR, PLOT, SIZE, VIRIDIS, save_heatmap_png
from helpers import REPO_ROOT
from PIL import Image


def _draw(features: np.ndarray, tmp_path, title: str = "DEN features of case",
          row_label: str = "slice along the first stored axis") -> np.ndarray:
    path = tmp_path / "case_den.png"
    save_heatmap_png(features, path, title, row_label)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == SIZE and picture.mode == "RGB"
        return np.asarray(picture)


def _has_ink(region: np.ndarray) -> bool:
    return bool(np.any(region.sum(axis=-1) < 200))


def test_one_strong_feature_is_the_brightest_colour_where_its_row_and_column_are(tmp_path):
    features = np.zeros((240, 4096), dtype=np.float32)
    features[120, 3000] = 2.5  # one feature of one slice, narrower than a pixel column
    pixels = _draw(features, tmp_path)
    width, height = PLOT[2] - PLOT[0], PLOT[3] - PLOT[1]
    x = PLOT[0] + 3000 * width // 4096
    y = PLOT[1] + int((120 + 0.5) * height / 240)
    assert tuple(pixels[y, x]) == tuple(VIRIDIS[255])
    assert tuple(pixels[PLOT[1] + 5, PLOT[0] + 5]) == tuple(VIRIDIS[0])
    assert tuple(pixels[COLOUR_BAR[1], COLOUR_BAR[0] + 5]) == tuple(VIRIDIS[255])  # the bar: highest at the top
    assert tuple(pixels[COLOUR_BAR[3] - 1, COLOUR_BAR[0] + 5]) == tuple(VIRIDIS[0])
    bright = np.all(pixels[PLOT[1]:PLOT[3], PLOT[0]:PLOT[2]] == VIRIDIS[255], axis=-1)
    rows, columns = np.nonzero(bright)
    assert set(columns) == {x - PLOT[0]} and rows.min() <= y - PLOT[1] <= rows.max()


def _changed(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the pixels that differ between two pictures."""
    return np.nonzero(np.any(first != second, axis=-1))


def test_each_text_is_drawn_in_its_own_place_and_nowhere_else(tmp_path):
    """Another title changes only the strip above the plot, centred over it; another row label only the strip left
    of the row numbers; an empty title leaves that strip blank paper."""
    features = np.random.default_rng(0).random((55, 4096), dtype=np.float32)
    title = "DEN features of pat0001 (den-bundled; reference mode)"
    first = _draw(features, tmp_path, title=title)
    rows, columns = _changed(first, _draw(features, tmp_path, title="DEN features of pat0002 (den-bundled; oriented)"))
    assert rows.size and rows.max() < PLOT[1] - 1
    assert abs((columns.min() + columns.max()) / 2 - (PLOT[0] + PLOT[2]) / 2) < 40
    blank_title = _draw(features, tmp_path, title="")
    assert np.all(blank_title[:PLOT[1] - 2] == blank_title[0, 0])
    rows, columns = _changed(first, _draw(features, tmp_path, title, "axial slice (row 0 = most inferior)"))
    assert columns.size and columns.max() < 48 and PLOT[1] <= rows.min() and rows.max() < PLOT[3]


def test_the_axes_are_numbered_by_the_matrix_shape_within_the_plot(tmp_path):
    """Fewer rows change the row numbers (left of the plot) and fewer features the feature numbers (below it), never
    with a number past the last row or column; ten times the values change only the colour bar's numbers."""
    features = np.random.default_rng(0).random((55, 4096), dtype=np.float32)
    first = _draw(features, tmp_path)
    twenty_rows = _draw(features[:20], tmp_path)
    rows, columns = _changed(first, twenty_rows)
    numbers = (columns >= 50) & (columns < PLOT[0] - 1)
    assert numbers.any() and PLOT[1] - 8 <= rows[numbers].min() and rows[numbers].max() < PLOT[3] - 8
    assert np.all(twenty_rows[PLOT[3] + 2:PLOT[3] + 20, 50:PLOT[0] - 8] == twenty_rows[0, 0])  # no "20" below row 19
    rows, columns = _changed(first, _draw(features[:, :1000], tmp_path))
    below = rows >= PLOT[3] + 1
    assert below.any() and PLOT[0] - 20 <= columns[below].min() and columns[below].max() < PLOT[2]
    rows, columns = _changed(first, _draw(features * 10, tmp_path))
    assert rows.size and columns.min() >= COLOUR_BAR[2] + 6 and columns.max() < COLOUR_BAR[2] + 50


@pytest.mark.parametrize("shape", [(1, 4096), (3, 10), (500, 4096)])
def test_small_large_and_constant_matrices_are_drawn(tmp_path, shape):
    pixels = _draw(np.zeros(shape, dtype=np.float32), tmp_path)
    assert np.all(pixels[PLOT[1]:PLOT[3], PLOT[0]:PLOT[2]] == VIRIDIS[0])


def test_drawing_does_not_import_matplotlib(tmp_path):
    script = ("import sys, numpy as np\nfrom pathlib import Path\n"
              "from DENExtractorLib.outputs.heatmap import save_heatmap_png\n"
              f"save_heatmap_png(np.ones((4, 4096), np.float32), Path({str(tmp_path / 'x.png')!r}), 't')\n"
              "print('matplotlib' in sys.modules)\n")
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=environment)
    assert done.stdout.strip() == "False"
