"""den-score checks the classifier before scoring and says when a case could not be scored (issue 27): the head
against the record (shape, type, finite values), every model file read bounded and never from a special file, a
damaged record named, the table's folder created or refused before any work, exit 1 when a case was not scored."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib.hashing import file_sha256
from DENExtractorLib.network.trained_record import TRAINING_RECORD_FORMAT
from DENExtractorLib.training.classifier import HEAD_FORMAT, write_head

pytestmark = pytest.mark.slow  # builds a model; scores a case

CLASSES = ("absent", "present")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A trunk weights file (the bundled weights, saved as den-train saves its own)."""
    from DENExtractorLib import build_model

    path = tmp_path_factory.mktemp("trunk") / "den_trained.weights.h5"
    build_model().save_weights(str(path))
    return path


def _model(folder: Path, weights: Path, write=None, preprocessing: dict | None = None) -> Path:
    """A model folder as den-train writes it; ``write(path)`` writes another head instead of a good one."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, folder / "den_trained.weights.h5")
    head = folder / "den_head.npz"
    if write is None:
        write_head(head, np.zeros((4096, 2), np.float32), np.zeros(2, np.float32), CLASSES)
    else:
        write(head)
    record = {"format": TRAINING_RECORD_FORMAT, "model_id": "den-test", "classes": list(CLASSES),
              "preprocessing": preprocessing or {"mode": "reference", "plane": None, "labels": "all",
                                                 "label_max": None},
              "outputs": {"head": {"file": head.name, "sha256": file_sha256(head)},
                          "weights": {"file": "den_trained.weights.h5",
                                      "sha256": file_sha256(folder / "den_trained.weights.h5")}}}
    (folder / "den_trained.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def _head_arrays(kernel: np.ndarray, bias: np.ndarray):
    """A head writer of these arrays, as they are (no conversion)."""
    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, format=np.asarray(HEAD_FORMAT), kernel=kernel, bias=bias, classes=np.asarray(CLASSES))
    return write


def _huge_head(path: Path) -> None:
    """A head whose kernel's .npy header declares 16 GB in a file of a few hundred bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (4096, 10**6)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("kernel.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\0" * 64)
        for name, array in (("format", np.asarray(HEAD_FORMAT)), ("bias", np.zeros(2, np.float32)),
                            ("classes", np.asarray(CLASSES))):
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())


def _score(arguments: list, capsys) -> tuple[int, list[str]]:
    """Run den-score; return its exit status and its stderr lines."""
    from DENExtractorLib.cli.score import main

    status = main([str(argument) for argument in arguments])
    return status, capsys.readouterr().err.strip().splitlines()


def _cases(folder: Path, *segmentations: Path) -> Path:
    """A cases CSV listing ``segmentations`` as cases c0, c1..."""
    path = folder / "cases.csv"
    path.write_text("case_id,segmentation\n" + "".join(f"c{index},{segmentation}\n"
                                                       for index, segmentation in enumerate(segmentations)))
    return path


@pytest.mark.parametrize(("write", "fault"), [
    (_head_arrays(np.zeros((100, 2), np.float32), np.zeros(2, np.float32)),
     "head arrays of shapes (100, 2) and (2,), where the training record's 2 classes need (4096, 2) and (2,)"),
    (_head_arrays(np.zeros((4096, 2)), np.zeros(2)), "head arrays of type float64 and float64, where den-train"),
    (_head_arrays(np.full((4096, 2), np.nan, np.float32), np.zeros(2, np.float32)), "values that are not finite"),
    (_huge_head, "its arrays declare 16384000"),
])
def test_a_head_that_does_not_fit_the_record_is_refused_before_scoring(weights_file, small_case, tmp_path, capsys,
                                                                        write, fault):
    model = _model(tmp_path / "model", weights_file, write)
    status, lines = _score(["--model", model, "--cases", _cases(tmp_path, small_case), "-o", tmp_path / "s.csv"],
                           capsys)
    assert status == 2 and len(lines) == 1, lines
    assert f"{model / 'den_head.npz'}: " in lines[0] and fault in lines[0]
    assert not (tmp_path / "s.csv").exists()


def test_a_record_missing_a_setting_is_refused_naming_it(weights_file, small_case, tmp_path, capsys):
    model = _model(tmp_path / "model", weights_file, preprocessing={"plane": None, "labels": "all"})
    status, lines = _score(["--model", model, "--cases", _cases(tmp_path, small_case), "-o", tmp_path / "s.csv"],
                           capsys)
    assert status == 2 and lines == [f"den-score: error: {model / 'den_trained.json'}: its preprocessing entry "
                                     "lacks 'mode'"]


def test_a_record_that_is_a_fifo_is_refused_without_waiting(weights_file, small_case, tmp_path):
    model = _model(tmp_path / "model", weights_file)
    (model / "den_trained.json").unlink()
    os.mkfifo(model / "den_trained.json")
    run = subprocess.run([sys.executable, "-m", "DENExtractorLib.cli.score", "--model", str(model), "--cases",
                          str(_cases(tmp_path, small_case)), "-o", str(tmp_path / "s.csv")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "den_trained.json: not a regular file (a named pipe): expected a den-train record" in run.stderr


def test_unscored_cases_make_den_score_exit_1_and_the_tables_folder_is_made_first(weights_file, small_case,
                                                                                 tmp_path, capsys):
    model = _model(tmp_path / "model", weights_file)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a volume")
    table = tmp_path / "new" / "folder" / "s.csv"
    status, lines = _score(["--model", model, "--cases", _cases(tmp_path, small_case, broken), "-o", table], capsys)
    assert status == 1, lines
    assert lines[-1] == f"scores: {table} (1 case(s) could not be scored)"
    rows = table.read_text().splitlines()
    assert rows[1].startswith("c0,absent,") and rows[2].startswith("c1,,,") and "broken.nii.gz" in rows[2]


def test_a_table_path_that_is_a_folder_is_refused_before_any_work(weights_file, small_case, tmp_path, capsys):
    model = _model(tmp_path / "model", weights_file)
    (tmp_path / "s.csv").mkdir()
    status, lines = _score(["--model", model, "--cases", _cases(tmp_path, small_case), "-o", tmp_path / "s.csv"],
                           capsys)
    assert status == 2 and lines == [f"den-score: error: {tmp_path / 's.csv'}: is a folder: -o names the scores "
                                     "table (a .csv file)"]
