"""Hangs, exit statuses, leftovers and unclear messages (issue 15, points 10-19): each answered with one plain line,
the promised exit status, and nothing left behind (real files, real processes)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from DENExtractorLib import DENError, load_segmentation, write_outputs
from DENExtractorLib.cohorts.cases import find_cases
from DENExtractorLib.outputs.atomic import PARTIAL_PREFIX, partial_prefix
from DENExtractorLib.training.labelled import read_labelled_cohort
from helpers import DATA, REPO_ROOT, den_weights_h5, run_cli, save_nifti

CHECK_THEN_REPORT_TENSORFLOW = (
    "import sys; from DENExtractorLib.cli.extract import main; status = main(sys.argv[1:]); "
    "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded'); sys.exit(status)"
)


def small_labels() -> np.ndarray:
    """A small label map with a cube of label 1."""
    data = np.zeros((16, 16, 8), dtype=np.uint8)
    data[4:12, 4:12, 2:6] = 1
    return data


def odd_weights(tmp_path, kind: str):
    """Weights files Keras would refuse only once TensorFlow is loaded."""
    path = tmp_path / f"{kind}.weights.h5"
    if kind == "nan_bias":
        return den_weights_h5(path, bad_value=np.nan)
    if kind == "empty_keras":
        path = tmp_path / "empty.keras"
        with zipfile.ZipFile(path, "w"):
            pass
        return path
    den_weights_h5(path)
    with h5py.File(path, "r+") as handle:
        if kind == "external_storage":
            raw = tmp_path / "outside.raw"
            raw.write_bytes(bytes(4096))
            handle.create_dataset("layers/extra", shape=(1024,), dtype="f4", external=[(str(raw), 0, 4096)])
        elif kind == "virtual":
            with h5py.File(tmp_path / "source.h5", "w") as source:
                source.create_dataset("data", data=np.zeros(4, dtype="f4"))
            layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
            layout[:] = h5py.VirtualSource(str(tmp_path / "source.h5"), "data", shape=(4,))
            handle.create_virtual_dataset("layers/virtual", layout)
        elif kind == "external_link":
            handle["layers/link"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/data")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind, fault", [
    ("nan_bias", "1 weight values are NaN or infinite"),
    ("empty_keras", "not a .keras"),
    ("external_storage", "keeps its data in external files"),
    ("virtual", "is a virtual dataset"),
    ("external_link", "links to other HDF5 files"),
])
def test_weights_keras_would_refuse_are_refused_once_with_exit_2_before_tensorflow(tmp_path, kind, fault):
    weights = odd_weights(tmp_path, kind)
    cases = [save_nifti(tmp_path / f"case{index}.nii.gz", small_labels()) for index in range(2)]
    done = subprocess.run([sys.executable, "-c", CHECK_THEN_REPORT_TENSORFLOW, *map(str, cases), "--weights",
                           str(weights), "-o", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor")))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"den-extract: error: {weights}: ") and fault in lines[0], lines
    assert done.stdout.strip() == "tensorflow not loaded"
    assert not (tmp_path / "out").exists()


def test_an_output_path_too_long_for_the_file_system_gets_one_line_and_exit_2(tmp_path, capsys):
    case = save_nifti(tmp_path / "case.nii.gz", small_labels())
    deep = tmp_path.joinpath(*["d" * 200] * 25)
    status, lines = run_cli([case, "-o", deep], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert "too long for the file system" in lines[0] and "internal error" not in lines[0]


def nrrd_bytes(header: str, voxels: np.ndarray) -> bytes:
    """An attached raw NRRD: the header, a blank line, then the voxels in Fortran order."""
    return header.encode("ascii") + b"\n" + voxels.tobytes(order="F")


def test_nrrd_space_directions_must_be_one_per_axis(tmp_path):
    path = tmp_path / "four.nrrd"
    path.write_bytes(nrrd_bytes("NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 16 16 8\n"
                                "space directions: (1,0,0) (0,1,0) (0,0,1) (1,1,1)\nencoding: raw\n", small_labels()))
    with pytest.raises(DENError, match=r"one per axis \(3 axes\); got shape \(4, 3\)"):
        load_segmentation(path)


def test_voxels_holding_the_bytes_of_a_blank_line_are_voxels_not_the_header_end(tmp_path):
    labels = small_labels()
    labels.flat[:4] = [13, 10, 13, 10]  # the voxels begin with b"\r\n\r\n"
    path = tmp_path / "crlf.nrrd"
    path.write_bytes(nrrd_bytes("NRRD0004\r\ntype: uint8\r\ndimension: 3\r\nspace: left-posterior-superior\r\n"
                                "sizes: 16 16 8\r\nspace directions: (1,0,0) (0,1,0) (0,0,1)\r\nencoding: raw\r\n",
                                labels).replace(b"raw\r\n\n", b"raw\r\n\r\n"))
    assert np.array_equal(load_segmentation(path).data, labels)


def test_a_pattern_with_25_stars_does_not_hang_the_folder_walk(tmp_path):
    (tmp_path / ("a_" * 60 + "y.nii.gz")).write_bytes(b"")
    (tmp_path / ("a_" * 30 + "x.nii.gz")).write_bytes(b"")
    program = (f"from DENExtractorLib.cohorts.cases import find_cases; "
               f"print([c.case_id for c in find_cases({str(tmp_path)!r}, {'*_' * 25 + 'x.nii.gz'!r}).cases])")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor")))
    assert done.stdout.strip() == str(["a_" * 30 + "x"]), done.stderr
    assert [case.case_id for case in find_cases(tmp_path, "*y.nii.gz").cases] == ["a_" * 60 + "y"]


KILLED_MID_WRITE = (
    "import os, signal, sys; from DENExtractorLib.outputs.atomic import atomic_path\n"
    "with atomic_path(sys.argv[1]) as temporary:\n"
    "    temporary.write_bytes(b'half a heatmap')\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
)


def partial_of_a_writer_killed_mid_write(target) -> list:
    """Run a real process that starts writing ``target`` atomically and is SIGKILLed mid-write; return what it
    left behind (its ``.den-partial-*`` file)."""
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor")))
    assert done.returncode == -9
    return list(target.parent.glob(f"{PARTIAL_PREFIX}*"))


def test_a_parts_run_removes_the_temporaries_of_dead_processes_only_and_merge_removes_all(tmp_path, capsys):
    table = tmp_path / "cases.csv"
    table.write_text("case_id,segmentation\nlost,lost.nii.gz\n")
    out = tmp_path / "out"
    out.mkdir()
    [dead] = partial_of_a_writer_killed_mid_write(out / "c0_den.png")
    living = out / f"{partial_prefix()}def.npy"
    other_host = out / f"{PARTIAL_PREFIX}othernode-12-ghi.npy"
    for path in (living, other_host):
        path.write_bytes(b"half")
    assert run_cli(["--cases", table, "-o", out, "--num-parts", "2", "--part-id", "0"], capsys)[0] == 1
    assert not dead.exists() and living.exists() and other_host.exists()
    run_cli(["--merge", out], capsys)
    assert living.exists() and not other_host.exists()  # a running process's temporary is never removed


def test_messages_are_plain_lines_without_control_bytes_or_exception_names(tmp_path, capsys):
    table = tmp_path / "cases.csv"
    table.write_text("case_id,segmentation\nbad\0id,seg.nii.gz\n", encoding="utf-8")
    status, lines = run_cli(["--cases", table, "-o", tmp_path / "out"], capsys)
    assert status == 1 and all("\0" not in line for line in lines)
    assert any("bad\\x00id" in line for line in lines), lines
    path = tmp_path / "skip.nrrd"
    path.write_bytes(nrrd_bytes("NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 16 16 8\n"
                                "space directions: (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\nbyte skip: 99999999999999\n",
                                small_labels()))
    with pytest.raises(DENError, match=r"'byte skip' 99999999999999 runs past the end of the data file"):
        load_segmentation(path)


@pytest.mark.needs_data  # reference_result extracts the shared BraTS case
@pytest.mark.slow
def test_write_outputs_creates_its_folder(tmp_path, reference_result):
    written = write_outputs(reference_result, tmp_path / "new" / "folder", "pat0001", png=False)
    assert sorted(path.name for path in written.values()) == ["pat0001_den.json", "pat0001_den.npy"]


def test_cohort_table_cells_cannot_become_spreadsheet_formulas(tmp_path, capsys):
    table = tmp_path / "cases.csv"
    cells = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(1)", "-1.5", "-x", "plain"]
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "segmentation", "site"])
        for index, cell in enumerate(cells):
            writer.writerow([f"c{index}", f"missing{index}.nii.gz", cell])
    assert run_cli(["--cases", table, "-o", tmp_path / "out"], capsys)[0] == 1
    with open(tmp_path / "out" / "den_cohort.csv", newline="") as handle:
        sites = [row["site"] for row in csv.DictReader(handle)]
    assert sites == ["'=cmd|' /C calc'!A0", "'+SUM(1,2)", "'@SUM(1)", "-1.5", "'-x", "plain"]


def test_nan_label_cells_are_missing_labels_not_classes(tmp_path):
    case = save_nifti(tmp_path / "case.nii.gz", small_labels())
    table = tmp_path / "cases.csv"
    table.write_text("case_id,segmentation,grade\n" + "".join(
        f"p{index},{case},{label}\n" for index, label in enumerate(["0", "0", "1", "1", "nan", "NaN", "NA"])))
    cohort = read_labelled_cohort(table, "grade")
    assert cohort.classes == ("0", "1")
    assert [exclusion.case_id for exclusion in cohort.excluded] == ["p4", "p5", "p6"]
    assert "('nan' means missing)" in cohort.excluded[0].message


@pytest.mark.needs_data
def test_a_failed_run_leaves_no_empty_output_folder(tmp_path, capsys):
    mri = DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk.nii.gz"
    status, lines = run_cli([mri, "-o", tmp_path / "new" / "out"], capsys)
    assert status == 1 and len(lines) == 1 and "not a label map" in lines[0]
    assert not (tmp_path / "new").exists()


def labelled_cohort_csv(folder) -> object:
    """A labelled cases CSV of four small generated cases, two per class."""
    from DENExtractorLib.demo import write_synthetic_case

    rows = ["case_id,segmentation,grade"]
    for index in range(4):
        path = write_synthetic_case(folder / f"c{index}.nii.gz", shape=(48, 48, 24), seed=index)
        rows.append(f"c{index},{path},{index % 2}")
    table = folder / "cases.csv"
    table.write_text("\n".join(rows) + "\n")
    return table


def test_den_train_refuses_a_seed_numpy_cannot_take_before_any_work(tmp_path, capsys):
    from DENExtractorLib.cli.train import main as train_main

    table = labelled_cohort_csv(tmp_path)
    status = train_main(["--cases", str(table), "--label-column", "grade", "-o", str(tmp_path / "model"),
                         "--seed", str(2**32)])
    captured = capsys.readouterr()
    assert status == 2 and captured.err.strip() == (
        f"den-train: error: seed: {2**32} must be a whole number from 0 to {2**32 - 1}")
    assert not (tmp_path / "model").exists() and "cached" not in captured.out


@pytest.mark.slow
def test_sigterm_stops_den_train_with_its_line_and_130(tmp_path):
    import signal

    table = labelled_cohort_csv(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "DENExtractorLib.cli.train", "--cases", str(table),
                                "--label-column", "grade", "-o", str(tmp_path / "model"), "--epochs", "200",
                                "--val-fraction", "0.5", "--test-fraction", "0"],  # a split the 4 cases allow
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor")))
    seen = []
    for line in process.stderr:  # every case cached: training is under way
        seen.append(line)
        if line.startswith("c3: "):
            break
    process.send_signal(signal.SIGTERM)
    stderr = "".join(seen) + process.communicate(timeout=300)[1]
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == ("den-train: interrupted; no training record was written "
                                               "(the slice cache is kept)")


def test_a_signal_while_a_fault_is_reported_ends_as_interrupted_without_a_traceback(monkeypatch, capsys):
    from DENExtractorLib.cli import options
    from DENExtractorLib.errors import DENError

    real_say, calls = options.say, []

    def say_interrupted_once(text, **keywords):
        calls.append(text)
        real_say(text, **keywords)
        if len(calls) == 1:
            raise KeyboardInterrupt  # SIGTERM's handler raises it wherever the program is

    def body():
        raise DENError("cases.csv", "the validation patients have no case of class '1'")

    monkeypatch.setattr(options, "say", say_interrupted_once)
    status = options.run_command("den-train", body, debug=False, interrupted="interrupted; nothing was written")
    assert status == 130
    assert capsys.readouterr().err.splitlines() == [
        "den-train: error: cases.csv: the validation patients have no case of class '1'",
        "den-train: interrupted; nothing was written"]
