"""Nothing silent, round two (issue 27): settings files, tables, the Label column and the messages each answer a
hostile or mistaken input with one line naming the file and the fault, before any work where it can be known."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
from DENExtractorLib.cohorts.cases import Case, CaseOutcome
from DENExtractorLib.cohorts.cases_csv import read_cases_csv, row_labels
from DENExtractorLib.cohorts.table import cohort_dataframe, cohort_rows
from DENExtractorLib.errors import DENError
from DENExtractorLib.params import read_params
from DENExtractorLib.readers import load_segmentation
from DENExtractorLib.volume import segmentation_from_array, select_labels
from helpers import REPO_ROOT, run_cli, save_nifti

LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
          "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
          "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nmode: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n")


def _labels() -> np.ndarray:
    """A small label map: one block of label 1."""
    data = np.zeros((16, 16, 8), dtype=np.uint8)
    data[4:10, 4:10, 2:5] = 1
    return data


# Settings files


@pytest.mark.parametrize(("text", "fault"), [
    (LAUGHS, "not valid YAML at line 2: aliases (*name) are not allowed in a settings file"),
    ("mode: " + "[" * 500 + "]" * 500 + "\n", "not valid YAML at line 1: nested more than 4 levels deep"),
    ("? [1, 2]\n: 3\n", "a key must be a setting name, not a list or mapping"),
    ("mode: " + "x" * 5000 + "\n", "mode: '" + "x" * 56 + "... is not one of reference, oriented"),
])
def test_a_hostile_settings_file_is_refused_in_one_short_line(tmp_path, text, fault):
    path = tmp_path / "den.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DENError) as refused:
        read_params(path)
    assert str(refused.value).startswith(f"{path}: ") and fault in str(refused.value)
    assert len(str(refused.value)) < 300


def test_a_settings_path_that_is_no_regular_file_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "den.yaml"
    os.mkfifo(fifo)  # opened for reading, a FIFO would wait for a writer for ever
    with pytest.raises(DENError, match=r"den\.yaml: not a regular file \(a named pipe\): expected a settings file"):
        read_params(fifo)
    with pytest.raises(DENError, match="/dev/zero: not a regular file"):
        read_params("/dev/zero")
    with pytest.raises(DENError, match=r"/proc/self/pagemap: .*too large for a settings file"):
        read_params("/proc/self/pagemap")


# Tables


@pytest.mark.slow
def test_den_slices_csv_writes_a_formula_case_id_as_text(tmp_path, small_case, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation\n=1+2,{small_case}\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", tmp_path / "out", "--slice-table", "--no-png"], capsys)
    assert status == 0, lines
    rows = (tmp_path / "out" / "den_slices.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("'=1+2,0,") and (tmp_path / "out" / "den_cohort.csv").read_text().count("'=1+2") == 1


def test_columns_without_a_name_are_refused_before_any_work(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,segmentation,,\np1,a.nii.gz,1,2\n", encoding="utf-8")
    with pytest.raises(DENError, match=r"cases\.csv: columns 3 and 4 of the header have no name"):
        read_cases_csv(cases)


def test_a_table_name_taken_by_a_folder_is_refused_before_any_work(tmp_path, small_case, capsys):
    out = tmp_path / "out"
    (out / "den_cohort.parquet").mkdir(parents=True)
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation\np1,{small_case}\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", out, "--parquet"], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert "den_cohort.parquet: a table of this run would replace this existing folder" in lines[0]
    assert not (out / "p1_den.npy").exists()


def _failed_outcome(case_id: str, segmentation: str) -> CaseOutcome:
    """A case that failed (no features), enough for the table's leading columns."""
    return CaseOutcome(Case(case_id, Path(segmentation)), "failed", "x")


def test_carried_columns_keep_their_numbers_in_the_dataframe_and_paths_lose_their_dot_dots(tmp_path):
    outcomes = [_failed_outcome("p1", "data/../p1.nii.gz"), _failed_outcome("p2", "p2.nii.gz")]
    carried = {"p1": {"Age": "63", "weight": "71.5", "site": "Bern", "code": "007"},
               "p2": {"Age": "", "weight": "80", "site": "Basel", "code": "012"}}
    frame = cohort_dataframe(outcomes, ("Age", "weight", "site", "code"), carried)
    assert str(frame["Age"].dtype) == "Int64" and frame["Age"].tolist()[0] == 63 and frame["Age"].isna().tolist()[1]
    assert str(frame["weight"].dtype) == "float64" and frame["weight"].tolist() == [71.5, 80.0]
    assert frame["site"].tolist() == ["Bern", "Basel"] and frame["code"].tolist() == ["007", "012"]
    path = cohort_rows(outcomes).leading[0][cohort_rows(outcomes).header.index("segmentation_path")]
    assert ".." not in path and path == str(Path("p1.nii.gz").absolute())


def test_the_documented_cohort_dataframe_call_keeps_the_cases_csvs_columns(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,segmentation,Age\np1,missing.nii.gz,63\n", encoding="utf-8")
    table = read_cases_csv(cases)
    frame = cohort_dataframe([_failed_outcome("p1", "missing.nii.gz")], table.carried_columns, table.carried_cells)
    assert frame["Age"].tolist() == [63]
    assert "table.carried_columns, table.carried_cells" in (REPO_ROOT / "docs" / "toolchain.md").read_text()


def test_rows_without_an_id_column_take_their_folders_name_where_file_names_are_equal(tmp_path, small_case):
    for name in ("TCGA-02-0003", "TCGA-06-0122"):
        (tmp_path / name).mkdir()
        shutil.copy(small_case, tmp_path / name / "fusion_mav_MODELPRED.nii.gz")
    cases = tmp_path / "batch.csv"
    cases.write_text("Mask\nTCGA-02-0003/fusion_mav_MODELPRED.nii.gz\nTCGA-06-0122/fusion_mav_MODELPRED.nii.gz\n")
    assert [case.case_id for case in read_cases_csv(cases).cases] == ["TCGA-02-0003", "TCGA-06-0122"]


# The Label column


def test_a_label_cell_of_only_commas_is_that_rows_problem():
    labels, problem = row_labels(",,,", "")
    assert labels is None and problem is not None and "Label ',,,' cannot be honoured" in problem


def test_a_long_label_list_gives_a_short_message():
    labels, problem = row_labels(",".join(str(value) for value in range(1, 5001)), "")
    assert problem is None and labels is not None and len(labels) == 5000
    volume = segmentation_from_array(_labels(), np.eye(4), "seg.nii.gz")
    with pytest.raises(DENError) as refused:
        select_labels(volume, labels)
    assert "label(s) [2, 3, 4, 5, 6, 7, 8, ..., 5000] (4999 values) not in the segmentation" in str(refused.value)
    assert len(str(refused.value)) < 200


# Messages


def test_a_folder_of_nifti_files_is_named_as_such(tmp_path, capsys):
    folder = tmp_path / "cohort"
    folder.mkdir()
    save_nifti(folder / "p1.nii.gz", _labels())
    status, lines = run_cli([folder, "-o", tmp_path / "out"], capsys)
    assert status == 1 and "a folder of volume files (p1.nii.gz...), not a segmentation file" in lines[0], lines
    assert f"--cohort {folder} --pattern '{{id}}.nii.gz'" in lines[0] and "DICOM" not in lines[0]


def test_a_ct_given_as_the_segmentation_gets_the_image_hint(tmp_path):
    data = np.full((16, 16, 8), -1000, dtype=np.int16)
    data[4:10, 4:10, 2:5] = 40
    with pytest.raises(DENError, match=r"negative label value -1000: .*pass an MRI as --image"):
        load_segmentation(save_nifti(tmp_path / "ct.nii.gz", data))


def test_an_over_long_path_is_one_line_of_its_own(tmp_path):
    path = tmp_path / ("a" * 300 + ".nii.gz")
    with pytest.raises(DENError, match=r"cannot be read \(file name too long\)"):
        load_segmentation(path)


def test_a_detached_nrrd_header_fault_names_the_nhdr(tmp_path):
    (tmp_path / "voxels.raw").write_bytes(_labels().tobytes(order="F"))
    header = tmp_path / "seg.nhdr"
    header.write_text("NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 16 16 8\n"
                      "space directions: (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\nline skip: -2\n"
                      "data file: voxels.raw\n\n")
    with pytest.raises(DENError, match=r"seg\.nhdr: 'line skip' -2 is negative"):
        load_segmentation(header)
    header.write_text(header.read_text().replace("line skip: -2", "byte skip: 999999"))
    with pytest.raises(DENError, match=r"seg\.nhdr: its data file voxels\.raw: 'byte skip' 999999 runs past"):
        load_segmentation(header)


def _damaged_headers(folder: Path) -> list[Path]:
    """A NIfTI with vox_offset NaN, one with a qform quaternion of norm above 1, a NRRD with a 1e200 mm spacing."""
    image = nibabel.Nifti1Image(_labels(), np.eye(4))
    image.header.set_qform(np.eye(4), code=1)
    image.header.set_sform(None, code=0)
    image.to_filename(folder / "ok.nii")
    raw = bytearray((folder / "ok.nii").read_bytes())
    offset, quaternion = bytearray(raw), bytearray(raw)
    offset[108:112] = struct.pack("<f", float("nan"))
    quaternion[256:268] = struct.pack("<fff", 0.9, 0.9, 0.9)
    (folder / "offset.nii").write_bytes(bytes(offset))
    (folder / "quaternion.nii").write_bytes(bytes(quaternion))
    (folder / "spacing.nrrd").write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 16 16 8\n"
        b"space directions: (1e200,0,0) (0,1,0) (0,0,1)\nencoding: raw\n\n" + _labels().tobytes(order="F"))
    return [folder / name for name in ("offset.nii", "quaternion.nii", "spacing.nrrd")]


@pytest.mark.slow
def test_damaged_headers_get_their_own_line_and_no_library_warning(tmp_path):
    paths = _damaged_headers(tmp_path)
    run = subprocess.run([sys.executable, "-m", "DENExtractorLib.cli", *map(str, paths), "-o", str(tmp_path / "out"),
                          "--mode", "oriented", "--quiet"], capture_output=True, text=True, timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 4, lines  # one line per case, then the summary
    assert "offset.nii: the header's vox_offset nan is not a byte position" in lines[0]
    assert "quaternion.nii: the header's orientation (qform quaternion or sform) is invalid" in lines[1]
    assert "spacing.nrrd: the voxel-to-world affine holds 1e+200 mm" in lines[2]
    assert not any("could not be processed" in line or "Warning" in line for line in lines)


UNREADABLE_CHECK = """
import sys
from DENExtractorLib import DENError, load_segmentation
try:
    load_segmentation(sys.argv[1])
except DENError as error:
    print(error)
"""


def test_an_unreadable_file_is_named_with_the_systems_reason(tmp_path):
    """A file the user may not read gets one line with the system's reason. Root reads every file whatever its
    permissions, so as root (CI) the reader runs in a child process without the capabilities that allow it
    (util-linux's ``setpriv`` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="den-unreadable-"))
    try:
        folder.chmod(0o755)  # others may look inside, not read the file
        path = save_nifti(folder / "seg.nii.gz", _labels())
        path.chmod(0)
        if os.geteuid() != 0:
            with pytest.raises(DENError, match=r"seg\.nii\.gz: cannot be read \(permission denied\)"):
                load_segmentation(path)
            return
        without_override = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                            "--bounding-set=-dac_override,-dac_read_search"]
        child = subprocess.run([*without_override, sys.executable, "-c", UNREADABLE_CHECK, str(path)],
                               capture_output=True, text=True, timeout=120)
        assert child.stdout.strip() == f"{path}: cannot be read (permission denied)", child.stderr[-2000:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_path_the_system_cannot_follow_is_named_with_its_reason(tmp_path):
    loop = tmp_path / "seg.nii.gz"
    loop.symlink_to(loop)
    with pytest.raises(DENError, match=r"seg\.nii\.gz: cannot be read \(too many levels of symbolic links\)"):
        load_segmentation(loop)


# The command line


def test_the_usage_line_shows_o_as_required_and_the_examples_one_a_line(capsys):
    from DENExtractorLib.cli.extract import build_parser

    text = build_parser().format_help()
    assert text.startswith("usage: den-extract (SEG ... | --cohort DIR | --cases CSV | --demo [CASE]) -o OUT")
    assert "\n  den-extract seg.nii.gz -o out\n" in text
    assert "\n  den-extract --cohort DATA --pattern '{id}_nifti/{id}_tumor_segmentation.nii.gz' -o out --resume\n" in text


def test_a_mistyped_option_gets_did_you_mean(capsys):
    from DENExtractorLib.cli.extract import main

    with pytest.raises(SystemExit) as ended:
        main(["seg.nii.gz", "--outptu", "out"])
    assert ended.value.code == 2
    assert "unrecognized arguments: --outptu out (did you mean --output?)" in capsys.readouterr().err
