"""The cases CSV: the columns a user writes, pyradiomics' batch files, relative paths, and one-line faults."""

from __future__ import annotations

from pathlib import Path

import pytest
from cohort_fixtures import read_rows
from DENExtractorLib.cohorts.cases_csv import read_cases_csv
from DENExtractorLib.errors import DENError
from helpers import DATA

pytestmark = [pytest.mark.needs_data]

BRATS = DATA / "brats2015"


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write a cases CSV (creating its folder) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def test_relative_paths_resolve_against_the_csv_folder_and_other_columns_are_carried(tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    (cohort / "pat0001").mkdir(parents=True)
    (cohort / "pat0001" / "seg.nii.gz").symlink_to(BRATS / "pat0001" / "OTMultiClass.nii.gz")
    (cohort / "pat0001" / "flair.nii.gz").symlink_to(BRATS / "pat0001" / "Flair_subtrMeanDivStd.nii.gz")
    cases_file = write_csv(cohort / "cases.csv",
                           "Site, CASE_ID ,segmentation,Image,label\n"
                           "Bern,pat0001,pat0001/seg.nii.gz,pat0001/flair.nii.gz,1\n"
                           f"Bern,pat0002,{BRATS / 'pat0002' / 'OTMultiClass.nii.gz'},,0\n")
    monkeypatch.chdir(tmp_path)  # not the CSV's folder: relative paths must not depend on it

    table = read_cases_csv(cases_file)

    assert table.problems == []
    assert [(case.case_id, case.segmentation, case.image) for case in table.cases] == [
        ("pat0001", cohort / "pat0001" / "seg.nii.gz", cohort / "pat0001" / "flair.nii.gz"),
        ("pat0002", BRATS / "pat0002" / "OTMultiClass.nii.gz", None),
    ]
    assert table.carried_columns == ("Site", "label")
    assert dict(table.columns_of("pat0002")) == {"Site": "Bern", "label": "0"}
    assert [row.row for row in table.rows] == [2, 3]


def test_a_pyradiomics_batch_file_works_as_it_is(tmp_path):
    cases_file = write_csv(tmp_path / "testCases.csv",
                           "ID,Image,Mask,Label\n"
                           f"brain1,{BRATS / 'pat0001' / 'T1c_subtrMeanDivStd.nii.gz'},{BRATS / 'pat0001' / 'OTMultiClass.nii.gz'},4\n")
    table = read_cases_csv(cases_file)
    assert [(case.case_id, case.segmentation.name, case.image.name) for case in table.cases] == [
        ("brain1", "OTMultiClass.nii.gz", "T1c_subtrMeanDivStd.nii.gz")]
    assert dict(table.columns_of("brain1")) == {"Label": "4"}


def test_without_an_id_column_a_case_is_named_by_its_segmentation_file(tmp_path):
    cases_file = write_csv(tmp_path / "cases.csv", f"Mask\n{BRATS / 'pat0002' / 'OTMultiClass.nii.gz'}\n"
                                                   f"{BRATS / 'pat0001' / 'OTMultiClass.nii.gz'}\n")
    assert [case.case_id for case in read_cases_csv(cases_file).cases] == ["pat0002", "pat0001"]


def test_excel_byte_order_mark_blank_lines_and_quoted_cells(tmp_path):
    segmentation = BRATS / "pat0001" / "OTMultiClass.nii.gz"
    cases_file = write_csv(tmp_path / "cases.csv",
                           f'\ncase_id,segmentation,note\n\n"a",{segmentation},"two\nlines, and a comma"\n'
                           f"b,{segmentation},\nc,missing.nii.gz,\n",
                           encoding="utf-8-sig")
    table = read_cases_csv(cases_file)
    assert [row.row for row in table.rows] == [4, 6, 7]
    assert table.columns_of("a")["note"] == "two\nlines, and a comma"
    assert [case.case_id for case in table.cases] == ["a", "b"]
    assert table.problems[0].problem == f"{cases_file} row 7: case 'c': segmentation file not found: {tmp_path / 'missing.nii.gz'}"


@pytest.mark.parametrize(("text", "fault"), [
    ("", "empty file: expected a header row such as 'case_id,segmentation,image'"),
    (" \n\n", "empty file: expected a header row such as 'case_id,segmentation,image'"),
    ("case_id,segmentation\n", "no cases: the header row is followed by no data rows"),
    ("case_id,image\np1,a.nii.gz\n", "no 'segmentation' (or pyradiomics 'Mask') column; the header has 'case_id', 'image'"),
    ("case_id;segmentation\np1;a.nii.gz\n", "no 'segmentation' (or pyradiomics 'Mask') column; the header has 'case_id;segmentation'"),
    ("case_id,segmentation,site,Site\np1,a.nii.gz,x,y\n", "the column 'Site' appears twice in the header"),
    ("case_id,segmentation\np1,a.nii.gz\np2,b.nii.gz\np1,c.nii.gz\n",
     "case id 'p1' is used on rows 2 and 4; each case needs its own id"),
])
def test_a_fault_of_the_whole_file_is_one_line_naming_it(tmp_path, text, fault):
    cases_file = write_csv(tmp_path / "cases.csv", text)
    with pytest.raises(DENError) as raised:
        read_cases_csv(cases_file)
    assert str(raised.value) == f"{cases_file}: {fault}"


def test_a_missing_or_binary_cases_file_is_one_line(tmp_path):
    with pytest.raises(DENError, match=r"absent\.csv: no such cases file$"):
        read_cases_csv(tmp_path / "absent.csv")
    binary = tmp_path / "cases.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00\x81 not text")
    with pytest.raises(DENError, match=r"cases\.xlsx: not a UTF-8 text file; save the cases table as CSV \(UTF-8\)$"):
        read_cases_csv(binary)


def test_a_bad_row_fails_only_its_case(tmp_path):
    good = BRATS / "pat0001" / "OTMultiClass.nii.gz"
    cases_file = write_csv(tmp_path / "cases.csv",
                           "case_id,segmentation,image\n"
                           f"good,{good},\n"
                           f"no_image,{good},absent_flair.nii.gz\n"
                           f",{good},\n"
                           f"../escape,{good},\n"
                           f".hidden,{good},\n"
                           "no_segmentation,,\n"
                           f"short,{good}\n"
                           f"long,{good},,extra\n")
    table = read_cases_csv(cases_file)
    assert [case.case_id for case in table.cases] == ["good"]
    assert [row.problem for row in table.problems] == [
        f"{cases_file} row 3: case 'no_image': image file not found: {tmp_path / 'absent_flair.nii.gz'}",
        f"{cases_file} row 4: the case id is empty",
        f"{cases_file} row 5: case id '../escape' contains a path separator; it must be a plain name",
        f"{cases_file} row 6: case id '.hidden' starts with a dot; it must be a plain name",
        f"{cases_file} row 7: the segmentation cell is empty",
        f"{cases_file} row 8: 2 cells where the header has 3 columns",
        f"{cases_file} row 9: 4 cells where the header has 3 columns",
    ]
    assert all("\n" not in row.problem for row in table.problems)
    with pytest.raises(ValueError, match="row 3 has a problem"):
        _ = table.problems[0].case


@pytest.mark.slow
def test_den_extract_runs_a_cases_csv_carrying_its_columns_and_failing_only_the_bad_row(cases_csv_run, capsys):
    cases_csv, out = cases_csv_run
    rows = read_rows(out / "den_cohort.csv")
    assert [(row["case_id"], row["site"], row["status"]) for row in rows] == [
        ("lost", "Basel", "failed"), ("pat0001", "Bern", "done"), ("pat0002", "Bern", "done"),
        ("small", "synthetic", "done")]
    assert list(rows[0])[:4] == ["case_id", "site", "status", "message"]
    assert rows[0]["message"] == f"{cases_csv} row 3: case 'lost': segmentation file not found: {cases_csv.parent / 'lost_case.nii.gz'}"
    assert int(rows[1]["rows"]) == 240 and rows[1]["mean_0"] != ""
    assert sorted(path.name for path in out.glob("*_den.npy")) == ["pat0001_den.npy", "pat0002_den.npy", "small_den.npy"]


@pytest.mark.parametrize(("header", "fault"), [
    ("case_id,segmentation,status", "the column 'status' would clash with den_cohort.csv's own column of that name: rename it"),
    ("case_id,segmentation,mean_12", "the column 'mean_12' would clash with den_cohort.csv's own column of that name: rename it"),
])
def test_den_extract_refuses_a_carried_column_named_like_a_table_column(tmp_path, capsys, header, fault):
    from DENExtractorLib.cli.extract import main

    cases_file = write_csv(tmp_path / "cases.csv", f"{header}\np1,{BRATS / 'pat0001' / 'OTMultiClass.nii.gz'},x\n")
    assert main(["--cases", str(cases_file), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"den-extract: error: {cases_file}: {fault}"
