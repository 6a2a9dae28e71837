"""Shared by the cohort-at-scale tests: a small real cohort, its one-process run, and output comparisons."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib.cohorts.cases import Case, CaseOutcome
from DENExtractorLib.cohorts.run import run_cohort
from DENExtractorLib.cohorts.table import write_cohort_table
from DENExtractorLib.demo import write_synthetic_case
from DENExtractorLib.extractor import DENExtractor
from DENExtractorLib.outputs.output_folder import prepare_output_folder
from DENExtractorLib.settings import ExtractionSettings
from helpers import DATA

SETTINGS = ExtractionSettings()


def real_cohort(folder: Path) -> list[Case]:
    """Three cases: the two real BraTS label maps and one small generated case, sorted by id."""
    small = write_synthetic_case(folder / "small.nii.gz", shape=(48, 48, 24), seed=5)
    return [
        Case("pat0001", DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz"),
        Case("pat0002", DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz"),
        Case("small", small),
    ]


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory) -> tuple[list[Case], Path, list[CaseOutcome]]:
    """The cohort run in this process, one case after another: the reference every other runner must equal."""
    folder = tmp_path_factory.mktemp("one_process")
    cases = real_cohort(folder)
    out = prepare_output_folder(folder / "out")
    outcomes = run_cohort(cases, out, DENExtractor(SETTINGS), png=False)
    assert [outcome.status for outcome in outcomes] == ["done"] * len(cases), [outcome.message for outcome in outcomes]
    write_cohort_table(outcomes, out / "den_cohort.csv")
    return cases, out, outcomes


def read_rows(table: Path) -> list[dict[str, str]]:
    """The rows of a cohort CSV."""
    with open(table, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_same_features(case_ids: list[str], expected_dir: Path, actual_dir: Path) -> None:
    """Each case's feature matrix is bitwise identical in the two output folders."""
    for case_id in case_ids:
        expected = np.load(expected_dir / f"{case_id}_den.npy")
        actual = np.load(actual_dir / f"{case_id}_den.npy")
        assert actual.dtype == expected.dtype == np.float32
        assert actual.tobytes() == expected.tobytes(), case_id


def write_cases_csv(folder: Path) -> Path:
    """A cases CSV of the real cohort, out of order, with a carried ``site`` column, a relative path and one row
    whose file is missing."""
    real_cohort(folder)
    path = folder / "cases.csv"
    path.write_text(
        "case_id,segmentation,site\n"
        f"pat0002,{DATA / 'brats2015' / 'pat0002' / 'OTMultiClass.nii.gz'},Bern\n"
        "lost,lost_case.nii.gz,Basel\n"
        f"pat0001,{DATA / 'brats2015' / 'pat0001' / 'OTMultiClass.nii.gz'},Bern\n"
        "small,small.nii.gz,synthetic\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def cases_csv_run(tmp_path_factory) -> tuple[Path, Path]:
    """``den-extract --cases CSV`` in one process (``--jobs 1``): the CSV and the output folder every other way of
    running the cohort must reproduce."""
    from DENExtractorLib.cli.extract import main

    folder = tmp_path_factory.mktemp("cases_csv")
    cases_csv = write_cases_csv(folder)
    out = folder / "jobs1"
    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet"]) == 1  # the lost case failed
    return cases_csv, out


def assert_same_cohort_output(expected_out: Path, actual_out: Path) -> None:
    """Same den_cohort.csv bytes, and bitwise identical features for every case the table lists as done."""
    expected_table = (expected_out / "den_cohort.csv").read_bytes()
    assert (actual_out / "den_cohort.csv").read_bytes() == expected_table
    done = [row["case_id"] for row in read_rows(expected_out / "den_cohort.csv") if row["status"] == "done"]
    assert done == ["pat0001", "pat0002", "small"]
    assert_same_features(done, expected_out, actual_out)
