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


def _draw(features: np.ndarray, tmp_path, title: str = "DEN features of case") -> np.ndarray:
    path = tmp_path / "case_den.png"
    save_heatmap_png(features, path, title, "slice along the first stored axis")
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


def test_title_axes_and_colour_bar_have_their_text(tmp_path):
    features = np.random.default_rng(0).random((55, 4096), dtype=np.float32)
    pixels = _draw(features, tmp_path)
    assert _has_ink(pixels[:PLOT[1] - 2, PLOT[0]:PLOT[2]])  # title
    assert _has_ink(pixels[PLOT[3] + 8:PLOT[3] + 24, PLOT[0]:PLOT[2]])  # feature index numbers
    assert _has_ink(pixels[PLOT[3] + 28:, PLOT[0]:PLOT[2]])  # feature axis label
    assert _has_ink(pixels[PLOT[1]:PLOT[3], 50:PLOT[0] - 6])  # row numbers
    assert _has_ink(pixels[PLOT[1]:PLOT[3], :48])  # row axis label, turned
    assert _has_ink(pixels[COLOUR_BAR[1]:COLOUR_BAR[3], COLOUR_BAR[2] + 6:COLOUR_BAR[2] + 50])  # bar values
    assert _has_ink(pixels[COLOUR_BAR[1]:COLOUR_BAR[3], 915:945])  # "activation", turned


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
