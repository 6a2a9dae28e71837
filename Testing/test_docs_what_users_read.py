"""Words a user reads: reference mode's first stored axis named anatomically (heatmap title, row axis, provenance),
and den-extract's progress as plain lines when stderr is a log file, a bar only on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from DENExtractorLib.extraction.provenance import stored_axis_anatomy
from DENExtractorLib.outputs.files import heatmap_row_label, heatmap_title
from DENExtractorLib.outputs.record import case_record
from helpers import REPO_ROOT

BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]])


@pytest.mark.parametrize(("affine", "axis", "words"), [
    (BRATS_AFFINE, 0, "sagittal, right to left"),
    (np.eye(4), 0, "sagittal, left to right"),
    (BRATS_AFFINE, 1, "coronal, anterior to posterior"),
    (np.eye(4), 2, "axial, inferior to superior"),
    (np.array([[0, 0, 2.0, 0], [0, 2, 0, 0], [-3, 0, 0, 0], [0, 0, 0, 1]]), 0, "axial, superior to inferior"),
    (np.array([[0.8, 0.6, 0, 0], [-0.6, 0.8, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), 0,
     "oblique, nearest sagittal, left to right"),
])
def test_a_stored_axis_is_named_by_its_plane_and_direction(affine, axis, words):
    assert stored_axis_anatomy(affine, axis) == words


@pytest.mark.needs_data
@pytest.mark.slow
def test_reference_mode_on_brats_says_sagittal_where_a_user_reads_the_axis(reference_result):
    provenance = reference_result.provenance
    assert provenance["preprocessing"]["slice_axis_anatomy"] == "sagittal, right to left"
    record = case_record(provenance)
    assert "reference mode, first stored axis: sagittal, right to left" in heatmap_title("pat0001", record)
    assert heatmap_row_label(record) == "sagittal slice, right to left (row r = voxel index i = r)"


def test_oriented_mode_keeps_its_plane_words():
    record = case_record({"model": {"id": "den-ref-v1", "weights_sha256": "0"}, "image": None,
                          "input": {"source": "x.nii.gz", "sha256": "0"},
                          "features": {"shape": [2, 4096], "foreground_rows": [0]},
                          "settings": {"mode": "oriented", "plane": "axial", "labels": "all", "label_max": 4.0},
                          "preprocessing": {"slice_axis_ras": "S"}})
    assert "oriented mode, axial plane" in heatmap_title("x", record)
    assert heatmap_row_label(record) == "axial slice (row 0 = most inferior)"


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory):
    """Two small synthetic glioblastoma files."""
    from DENExtractorLib.demo import write_synthetic_case

    folder = tmp_path_factory.mktemp("two")
    return [write_synthetic_case(folder / f"case{seed}.nii.gz", shape=(48, 48, 24), seed=seed) for seed in (1, 2)]


def den_extract_with_stderr(arguments: list, stderr) -> subprocess.CompletedProcess:
    """Run den-extract in a fresh process with stderr sent to ``stderr`` (a file or a terminal's descriptor)."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    return subprocess.run([sys.executable, "-m", "DENExtractorLib.cli", *map(str, arguments)], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, env=environment, timeout=300, check=False)


@pytest.mark.slow
def test_in_a_log_file_progress_is_one_plain_line_per_finished_case(two_cases, tmp_path):
    log = tmp_path / "job.log"
    with log.open("w") as stderr:
        finished = den_extract_with_stderr([*two_cases, "-o", tmp_path / "out", "--no-png"], stderr)
    assert finished.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text  # no redraws, no cursor movement
    progress = [line.split(", ")[0] for line in text.splitlines() if line.startswith("progress: ")]
    assert progress == ["progress: 1/2 cases finished", "progress: 2/2 cases finished"]
    assert text.splitlines()[-1] == "2 case(s): 2 done, 0 resumed, 0 failed"
    assert len(finished.stdout.splitlines()) == 2  # the per-case lines, unchanged


@pytest.mark.slow
def test_on_a_terminal_progress_is_a_bar(two_cases, tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        finished = den_extract_with_stderr([*two_cases, "-o", tmp_path / "out", "--no-png"], follower)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once everything has been read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert finished.returncode == 0
    text = shown.decode()
    assert "100%" in text and "2/2" in text and "progress: " not in text
