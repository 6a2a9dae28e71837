"""``--jobs N``: spawned worker processes give the one-process features bit for bit; a dead worker fails its case."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cohort_fixtures import (
    SETTINGS,
    assert_same_cohort_output,
    assert_same_features,
    read_rows,
    real_cohort,
)
from DENExtractorLib.cohorts.processes import run_cases_in_processes
from DENExtractorLib.cohorts.table import write_cohort_table
from DENExtractorLib.errors import DENError
from DENExtractorLib.outputs.output_folder import prepare_output_folder
from DENExtractorLib.settings import ExtractionSettings
from helpers import DATA, REPO_ROOT

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.needs_data]


def test_two_workers_give_the_one_process_features_bit_for_bit_and_the_same_table(one_process_run, tmp_path):
    cases, expected_out, _ = one_process_run
    out = prepare_output_folder(tmp_path / "out")
    reported = []

    outcomes = run_cases_in_processes(cases, out, SETTINGS, jobs=2, png=False, on_case_done=reported.append)

    assert [outcome.case for outcome in outcomes] == cases
    assert sorted(outcome.case.case_id for outcome in reported) == [case.case_id for case in cases]
    assert [outcome.status for outcome in outcomes] == ["done"] * 3
    assert_same_features([case.case_id for case in cases], expected_out, out)
    write_cohort_table(outcomes, out / "den_cohort.csv")
    assert read_rows(out / "den_cohort.csv") == read_rows(expected_out / "den_cohort.csv")
    assert multiprocessing.active_children() == []


def test_a_killed_worker_fails_only_its_case(one_process_run, tmp_path):
    cases, expected_out, _ = one_process_run
    killed = []

    def kill_first_worker() -> None:
        """SIGKILL worker 0 while it holds its first case (it gets one as soon as it starts)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for child in multiprocessing.active_children():
                if child.name == "den-worker-0" and child.pid:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    outcomes = run_cases_in_processes(cases, tmp_path, SETTINGS, jobs=2, png=False)
    killer.join()

    assert killed
    first, *others = outcomes
    assert first.status == "failed"
    assert first.message == (f"{cases[0].segmentation}: the worker process extracting this case died "
                             "(killed by signal SIGKILL, perhaps for lack of memory); no output was written")
    assert [outcome.status for outcome in others] == ["done", "done"]
    assert_same_features([outcome.case.case_id for outcome in others], expected_out, tmp_path)
    assert not list(tmp_path.glob(f"{cases[0].case_id}_den.*")) and not list(tmp_path.glob(".den-partial-*"))
    assert multiprocessing.active_children() == []


def test_weights_a_worker_cannot_use_stop_the_run_with_one_line(tmp_path):
    from DENExtractorLib.network.model import build_model

    model = build_model()
    arrays = model.get_weights()
    arrays[0][0, 0, 0, 0] = np.nan  # passes the metadata check in this process; the worker's build refuses it
    model.set_weights(arrays)
    weights = tmp_path / "nan.weights.h5"
    model.save_weights(str(weights))
    cases = real_cohort(tmp_path)[2:]
    with pytest.raises(DENError, match=r"nan\.weights\.h5: .*(NaN|non-finite|finite)"):
        run_cases_in_processes(cases, tmp_path / "out", ExtractionSettings(weights=weights), jobs=1, png=False)
    assert multiprocessing.active_children() == []
    assert not (tmp_path / "out").exists()


def test_den_extract_jobs_2_writes_the_same_table_and_features_as_jobs_1(cases_csv_run, tmp_path, capsys):
    from DENExtractorLib.cli.extract import main

    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "jobs2"
    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet", "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "4 case(s): 3 done, 0 resumed, 1 failed" in err
    assert "row 3: case 'lost': segmentation file not found" in err
    assert_same_cohort_output(expected_out, out)
    assert multiprocessing.active_children() == []

    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet", "--jobs", "2", "--resume"]) == 1
    assert "4 case(s): 0 done, 3 resumed, 1 failed" in capsys.readouterr().err


def processes_in_group(group: int) -> list[str]:
    """The command lines of the live processes in a process group (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == group:
                status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if status != "Z":
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except (OSError, ProcessLookupError):
            continue
    return found


def test_sigterm_with_jobs_2_keeps_finished_cases_and_leaves_no_worker_or_partial_file(tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for index in range(8):
        source = DATA / "brats2015" / ("pat0001" if index % 2 == 0 else "pat0002") / "OTMultiClass.nii.gz"
        (cohort / f"case{index:02d}.nii.gz").symlink_to(source)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "DENExtractorLib.cli", "--cohort", str(cohort), "-o", str(out), "--quiet",
               "--no-png", "--jobs", "2"]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("*_den.json")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    left = processes_in_group(process.pid)
    deadline = time.monotonic() + 15
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_in_group(process.pid)
    assert left == [], "processes outlived den-extract"
    assert not [path.name for path in out.iterdir() if path.name.startswith(".den-partial-")]
    finished = {path.name[: -len("_den.json")] for path in out.glob("*_den.json")}
    in_table = {row["case_id"] for row in read_rows(out / "den_cohort.csv")}
    assert 1 <= len(finished) < 8
    assert in_table <= finished and len(finished - in_table) <= 2  # a worker may finish as the signal arrives
