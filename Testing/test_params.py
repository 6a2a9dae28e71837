"""``--params den.yaml``: every extraction setting in a checked YAML file, refused in one line before any work,
and the effective settings (with where each came from) in the provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from DENExtractorLib.params import MAX_PARAMS_BYTES, read_params
from helpers import run_cli


def write(path, text: str):
    """Write a settings file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_settings_file_gives_the_features_of_the_same_options_and_the_provenance_says_so(tmp_path, small_case,
                                                                                          capsys):
    params = write(tmp_path / "den.yaml", "# study settings\nmode: oriented\nplane: coronal\nlabels: [4, 1]\n"
                                          "png: false\n")
    status, lines = run_cli([small_case, "-o", tmp_path / "file", "--params", params], capsys)
    assert status == 0, lines
    status, lines = run_cli([small_case, "-o", tmp_path / "options", "--mode", "oriented", "--plane", "coronal",
                             "--labels", "1,4", "--no-png"], capsys)
    assert status == 0, lines
    from_file = np.load(tmp_path / "file" / "small_case_den.npy")
    assert from_file.tobytes() == np.load(tmp_path / "options" / "small_case_den.npy").tobytes()
    assert not (tmp_path / "file" / "small_case_den.png").exists()  # png: false
    record = json.loads((tmp_path / "file" / "small_case_den.json").read_text())["settings"]
    source = f"params file {params} (sha256 {read_params(params).sha256})"
    assert record == {"mode": "oriented", "plane": "coronal", "labels": [1, 4], "weights": "bundled", "label_max": 4.0,
                      "from": {"mode": source, "plane": source, "labels": source, "weights": "default",
                               "label_max": "default"}}
    options = json.loads((tmp_path / "options" / "small_case_den.json").read_text())["settings"]
    assert options["from"] == {"mode": "command line", "plane": "command line", "labels": "command line",
                               "weights": "default", "label_max": "default"}

    status, lines = run_cli([small_case, "-o", tmp_path / "override", "--params", params, "--labels", "4"], capsys)
    assert status == 0, lines
    record = json.loads((tmp_path / "override" / "small_case_den.json").read_text())["settings"]
    assert record["labels"] == [4] and record["from"]["labels"] == "command line" and record["from"]["mode"] == source


@pytest.mark.parametrize(("text", "fault"), [
    ("modee: oriented\n", "unknown setting 'modee'; a settings file may hold mode, plane, labels, weights, "
                          "label_max, png, parquet, slice_table"),
    ("mode: fast\n", "mode: 'fast' is not one of reference, oriented"),
    ("mode: oriented\nplane: diagonal\n", "plane: 'diagonal' is not one of axial, coronal, sagittal"),
    ("labels: [0, 4]\n", "labels: [0, 4] is not 'all', a positive whole number or a list of them, e.g. [1, 4]"),
    ("labels: yes\n", "labels: True is not 'all', a positive whole number or a list of them, e.g. [1, 4]"),
    ("labels: 2.5\n", "labels: 2.5 is not 'all', a positive whole number or a list of them, e.g. [1, 4]"),
    ("png: 0\n", "png: 0 is not true or false"),
    ("mode: oriented\nmode: reference\n", "not valid YAML at line 2: the key 'mode' appears twice"),
    ("mode: [oriented\n", "not valid YAML at line 2: expected ',' or ']', but got '<stream end>'"),
    ("- mode\n- oriented\n", "a settings file holds 'key: value' lines (mode: oriented ...), not a list or a value"),
    ("1: oriented\n", "unknown setting 1; a settings file may hold mode, plane, labels, weights, label_max, png, "
                      "parquet, slice_table"),
    ("mode: oriented\nlabel_max: -1\n", "label_max: -1 is not a positive number or 'case'"),
])
def test_a_wrong_key_or_value_is_refused_in_one_line_before_any_work(tmp_path, small_case, capsys, text, fault):
    params = write(tmp_path / "den.yaml", text)
    status, lines = run_cli([small_case, "-o", tmp_path / "out", "--params", params], capsys)
    assert status == 2
    assert lines == [f"den-extract: error: {params}: {fault}"]
    assert not (tmp_path / "out").exists()  # nothing done: not even the output folder


def test_a_file_asking_to_run_code_is_refused_and_runs_nothing(tmp_path, small_case, capsys):
    marker = tmp_path / "ran"
    params = write(tmp_path / "den.yaml", f"mode: !!python/object/apply:os.system ['touch {marker}']\n")
    status, lines = run_cli([small_case, "-o", tmp_path / "out", "--params", params], capsys)
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith(f"den-extract: error: {params}: not valid YAML at line 1: ")
    assert not marker.exists()


def test_relative_weights_are_taken_from_the_settings_files_folder(tmp_path, small_case, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    params = write(folder / "den.yaml", "weights: models/grade.weights.h5\n")
    status, lines = run_cli([small_case, "-o", tmp_path / "out", "--params", params], capsys)
    assert status == 2
    assert lines == [f"den-extract: error: {folder / 'models' / 'grade.weights.h5'}: no such weights file"]


def test_a_huge_or_missing_or_empty_settings_file(tmp_path, small_case, capsys):
    huge = write(tmp_path / "huge.yaml", "# padding\n" * (MAX_PARAMS_BYTES // 10 + 1))
    status, lines = run_cli([small_case, "-o", tmp_path / "out", "--params", huge], capsys)
    assert status == 2 and lines == [f"den-extract: error: {huge}: {huge.stat().st_size} bytes is too large for a "
                                     f"settings file (at most {MAX_PARAMS_BYTES})"]
    status, lines = run_cli([small_case, "-o", tmp_path / "out", "--params", tmp_path / "none.yaml"], capsys)
    assert status == 2 and lines == [f"den-extract: error: {tmp_path / 'none.yaml'}: no such settings file"]
    assert read_params(write(tmp_path / "empty.yaml", "# nothing chosen\n")).values == {}
