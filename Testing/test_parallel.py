"""``--jobs N``: spawned worker processes give the one-process features bit for bit; a dead worker fails its case."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from cohort_fixtures import SETTINGS, assert_same_cohort_output, assert_same_features, read_rows, real_cohort
from DENExtractorLib.cohort import write_cohort_table
from DENExtractorLib.output_folder import prepare_output_folder
from DENExtractorLib.errors import DENError
from DENExtractorLib.parallel import run_cases_in_processes
from DENExtractorLib.settings import ExtractionSettings


def test_two_workers_give_the_one_process_features_bit_for_bit_and_the_same_table(one_process_run, tmp_path):
    cases, expected_out, expected_outcomes = one_process_run
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
    from DENExtractorLib.network import build_model

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
    from DENExtractorLib.cli import main

    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "jobs2"
    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet", "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "4 case(s): 3 done, 0 resumed, 1 failed" in err
    assert "row 3: case 'lost': segmentation file not found" in err
    assert_same_cohort_output(expected_out, out)
    assert multiprocessing.active_children() == []
