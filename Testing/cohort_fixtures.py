"""Shared by the cohort-at-scale tests: a small real cohort, its one-process run, and output comparisons."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib.cohorts.cases import Case, CaseOutcome
from DENExtractorLib.cohorts.run import run_cohort
from DENExtractorLib.cohorts.table import write_cohort_table
from DENExtractorLib.demo import write_synthetic_case
from DENExtractorLib.extraction.extractor import DENExtractor
from DENExtractorLib.hashing import file_sha256
from DENExtractorLib.outputs.atomic import PARTIAL_PREFIX
from DENExtractorLib.outputs.output_folder import prepare_output_folder
from DENExtractorLib.settings import ExtractionSettings
from helpers import DATA, REPO_ROOT

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


def write_long_cohort(root):
    """Twelve real BraTS cases in ``root`` (links to the two shared ones); return ``root``."""
    for index in range(12):
        source = DATA / "brats2015" / ("pat0001" if index % 2 == 0 else "pat0002") / "OTMultiClass.nii.gz"
        (root / f"case{index:02d}.nii.gz").symlink_to(source)
    return root


def interrupt_mid_run(arguments: list, out_dir, signal_number: int, *, whole_group: bool = False) -> str:
    """Start den-extract with ``arguments``, send ``signal_number`` while it works on the case after the first
    finished one (to the whole process group, as a terminal's Ctrl-C does, with ``whole_group``), check that it
    exits with 130 and return its stderr."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    command = [sys.executable, "-m", "DENExtractorLib.cli", *map(str, arguments), "-o", str(out_dir), "--quiet"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out_dir.glob("*_den.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the next case: reading, computing or writing
    if whole_group:
        os.killpg(process.pid, signal_number)
    else:
        process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    return stderr


def assert_the_table_lists_every_case_with_outputs_and_nothing_is_partial(out_dir, cases: int) -> None:
    """After an interrupted run: no temporary file of ours, some but not all cases finished, each with its
    ``.json``, ``.npy`` and a row in the cohort table."""
    assert not [path.name for path in out_dir.iterdir() if path.name.startswith(PARTIAL_PREFIX)]
    with open(out_dir / "den_cohort.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    finished = sorted(path.name[: -len("_den.json")] for path in out_dir.glob("*_den.json"))
    assert 1 <= len(rows) < cases and sorted(row["case_id"] for row in rows) == finished
    assert sorted(path.name[: -len("_den.npy")] for path in out_dir.glob("*_den.npy")) == finished
    for case_id in finished:
        record = json.loads((out_dir / f"{case_id}_den.json").read_text())
        assert record["outputs"]["npy"]["sha256"] == file_sha256(out_dir / f"{case_id}_den.npy")
