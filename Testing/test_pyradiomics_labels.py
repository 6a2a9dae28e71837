"""pyradiomics batch files honoured: a row's ``Label`` keeps that label exactly as ``--labels`` does for a run."""

from __future__ import annotations

import numpy as np
import pytest
from cohort_fixtures import read_rows
from DENExtractorLib.cohorts.cases_csv import read_cases_csv, row_labels
from helpers import PAT0001_LABELS, run_cli


@pytest.mark.slow
@pytest.mark.needs_data
def test_label_per_row_gives_the_features_of_a_labels_run(tmp_path, small_case, capsys):
    cases = tmp_path / "testCases.csv"
    cases.write_text("ID,Image,Mask,Label,Label_channel\n"
                     f"brats_enhancing,,{PAT0001_LABELS},4,0\n"
                     f"small_core,,{small_case},\"1,4\",\n"
                     f"small_all,,{small_case},,\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", tmp_path / "batch", "--no-png"], capsys)
    assert status == 0, lines
    for segmentation, labels, case_id in ((PAT0001_LABELS, "4", "brats_enhancing"), (small_case, "1,4", "small_core")):
        status, lines = run_cli([segmentation, "-o", tmp_path / labels, "--labels", labels, "--no-png"], capsys)
        assert status == 0, lines
        expected = np.load(next((tmp_path / labels).glob("*_den.npy")))
        assert np.load(tmp_path / "batch" / f"{case_id}_den.npy").tobytes() == expected.tobytes(), case_id
    status, lines = run_cli([small_case, "-o", tmp_path / "all", "--no-png"], capsys)
    all_labels = np.load(tmp_path / "all" / "small_case_den.npy")
    assert np.load(tmp_path / "batch" / "small_all_den.npy").tobytes() == all_labels.tobytes()
    assert not np.array_equal(all_labels, np.load(tmp_path / "batch" / "small_core_den.npy"))
    rows = {row["case_id"]: row for row in read_rows(tmp_path / "batch" / "den_cohort.csv")}
    assert rows["brats_enhancing"]["Label"] == "4"  # the pyradiomics column is still carried through


def test_a_label_that_cannot_be_honoured_is_refused_with_its_row(tmp_path, small_case):
    cases = tmp_path / "cases.csv"
    cases.write_text("ID,Mask,Label,Label_channel\n"
                     f"zero,{small_case},0,\n"
                     f"fraction,{small_case},1.5,\n"
                     f"word,{small_case},tumour,\n"
                     f"channel,{small_case},1,2\n"
                     f"fine,{small_case},4.0,0\n", encoding="utf-8")
    table = read_cases_csv(cases, select_labels=True)
    problems = {row.case_id: row.problem for row in table.problems}
    assert set(problems) == {"zero", "fraction", "word", "channel"}
    assert problems["zero"] == f"{cases} row 2: case 'zero': Label '0' cannot be honoured: give a positive whole " \
                               "label value (0 is background), or several as '1,4'"
    assert problems["word"].startswith(f"{cases} row 4: case 'word': Label 'tumour' cannot be honoured")
    assert problems["channel"].startswith(f"{cases} row 5: case 'channel': Label_channel '2' cannot be honoured")
    assert [(case.case_id, case.labels) for case in table.cases] == [("fine", (4,))]
    # den-train reads the same file with Label as any other column: no row is refused for it
    assert read_cases_csv(cases).problems == []


def test_a_refused_label_fails_only_its_row_in_den_extract(tmp_path, small_case, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"ID,Mask,Label\nbad,{small_case},-1\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", tmp_path / "out", "--no-png"], capsys)
    assert status == 1
    assert any(line.endswith(f"{cases} row 2: case 'bad': Label '-1' cannot be honoured: give a positive whole label "
                             "value (0 is background), or several as '1,4'") for line in lines), lines
    assert read_rows(tmp_path / "out" / "den_cohort.csv")[0]["status"] == "failed"


@pytest.mark.parametrize(("cell", "expected"), [("4", (4,)), (" 4 , 1 ", (1, 4)), ("2.0", (2,)), ("", None)])
def test_label_cells_that_are_honoured(cell, expected):
    assert row_labels(cell, "") == (expected, None)


@pytest.mark.slow
@pytest.mark.scale
def test_worker_processes_honour_each_rows_label(tmp_path, small_case, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"ID,Mask,Label\nfour,{small_case},4\nall,{small_case},\n", encoding="utf-8")
    for jobs in ("1", "2"):
        status, lines = run_cli(["--cases", cases, "-o", tmp_path / jobs, "--no-png", "--jobs", jobs], capsys)
        assert status == 0, lines
    for case_id in ("four", "all"):
        one, two = (np.load(tmp_path / jobs / f"{case_id}_den.npy") for jobs in ("1", "2"))
        assert one.tobytes() == two.tobytes(), case_id
    assert not np.array_equal(np.load(tmp_path / "2" / "four_den.npy"), np.load(tmp_path / "2" / "all_den.npy"))
    rows = {row["case_id"]: row["labels"] for row in read_rows(tmp_path / "2" / "den_cohort.csv")}
    assert rows == {"four": "4", "all": "all"}
