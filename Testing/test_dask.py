"""Dask: a real LocalCluster and real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1 give the
one-process features bit for bit; a worker lost mid-case means one retry, then a failed case."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import distributed
import pytest
from cohort_fixtures import (
    SETTINGS,
    assert_same_cohort_output,
    assert_same_features,
    assert_the_table_lists_every_case_with_outputs_and_nothing_is_partial,
    interrupt_mid_run,
    write_long_cohort,
)
from DENExtractorLib.cli.extract import main
from DENExtractorLib.cohorts.dask_cluster import run_cases_on_dask
from helpers import DATA

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.needs_data]

DASK = Path(sys.executable).with_name("dask")
START_SECONDS = 120


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A real ``dask scheduler`` and a ``dask worker`` process with two single-threaded workers (with nannies,
    which restart a killed worker), on 127.0.0.1 only; the scheduler allows one retry, like ``--scheduler local``.
    Always torn down."""
    logs = tmp_path_factory.mktemp("dask_logs")
    address = f"tcp://127.0.0.1:{free_port()}"
    environment = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
                       DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0")
    commands = [
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
        [str(DASK), "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
         "--no-dashboard", "--memory-limit", "4GiB"],
    ]
    processes = []
    try:
        for number, command in enumerate(commands):
            with open(logs / f"process{number}.log", "wb") as log:  # the process keeps its own copy of the file
                processes.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
            time.sleep(1.0 if number == 0 else 0)
        with distributed.Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=START_SECONDS)
        yield address
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def test_den_extract_on_a_local_cluster_writes_the_one_process_table_and_features(cases_csv_run, tmp_path, capsys):
    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "dask_local"
    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet", "--scheduler", "local", "--jobs", "2"]) == 1
    assert "4 case(s): 3 done, 0 resumed, 1 failed" in capsys.readouterr().err
    assert_same_cohort_output(expected_out, out)


def test_den_extract_on_a_scheduler_and_workers_started_by_the_user(cases_csv_run, dask_cluster, tmp_path, capsys):
    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "dask_cluster"
    assert main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet", "--scheduler", dask_cluster]) == 1
    assert "4 case(s): 3 done, 0 resumed, 1 failed" in capsys.readouterr().err
    assert_same_cohort_output(expected_out, out)


def test_ctrl_c_on_a_local_cluster_is_two_lines_and_the_table_lists_every_case_with_outputs(tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    out_dir, log = tmp_path / "out", tmp_path / "run.log"
    stderr = interrupt_mid_run(["--cohort", write_long_cohort(cohort), "--scheduler", "local", "--jobs", "2",
                                "--log-file", log], out_dir, signal.SIGINT, whole_group=True)  # the workers get it too
    lines = stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("12 case(s): "), stderr
    assert lines[1] == "den-extract: interrupted; finished cases are kept"
    assert_the_table_lists_every_case_with_outputs_and_nothing_is_partial(out_dir, 12)
    assert "distributed." in log.read_text(encoding="utf-8")  # Dask's own records: in the log file, not on stderr


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation\np1,{DATA / 'brats2015' / 'pat0001' / 'OTMultiClass.nii.gz'}\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):  # Dask's own setting (default 30 s)
        assert main(["--cases", str(cases), "-o", str(tmp_path / "out"), "--quiet", "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"den-extract: error: {address}: cannot reach the Dask scheduler (") and "\n" not in err


def test_a_worker_whose_weights_differ_from_the_clients_is_refused_before_any_case(dask_cluster):
    from DENExtractorLib.cohorts.dask_cluster import DENWorkerPlugin, WorkerSetupFailed
    from DENExtractorLib.network.bundled import REFERENCE_WEIGHTS_SHA256

    with distributed.Client(dask_cluster, timeout="30s", set_as_default=False) as client:
        try:
            with pytest.raises(WorkerSetupFailed) as raised:
                client.register_plugin(DENWorkerPlugin(SETTINGS, "0" * 64, None), name="den-extractor")
        finally:
            client.unregister_worker_plugin("den-extractor")
    source, fault = raised.value.args
    assert source == "bundled"
    assert fault.startswith("on Dask worker tcp://127.0.0.1:")
    assert fault.endswith(f"this worker's weights have sha256 {REFERENCE_WEIGHTS_SHA256}, the client's {'0' * 64}: "
                          "give every worker the same weights file")


class WorkerKiller(threading.Thread):
    """Kills, ``times`` times, whichever worker process is extracting the task whose key starts with ``prefix``."""

    def __init__(self, address: str, prefix: str, times: int) -> None:
        super().__init__(daemon=True)
        self.address, self.prefix, self.times, self.killed = address, prefix, times, []

    def run(self) -> None:
        with distributed.Client(self.address, timeout="30s", set_as_default=False) as client:
            deadline = time.monotonic() + 180
            while len(self.killed) < self.times and time.monotonic() < deadline:
                for worker, keys in client.processing().items():
                    if any(str(key).startswith(self.prefix) for key in keys) and worker not in self.killed:
                        pid = client.run(os.getpid, workers=[worker])[worker]
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(worker)
                        break
                time.sleep(0.05)


@pytest.mark.parametrize("kills", [1, 2])
def test_a_lost_worker_is_retried_once_then_its_case_fails(one_process_run, dask_cluster, tmp_path, kills):
    cases, expected_out, _ = one_process_run
    killer = WorkerKiller(dask_cluster, "den-0-", kills)
    killer.start()
    outcomes = run_cases_on_dask(cases, tmp_path, SETTINGS, scheduler=dask_cluster, png=False)
    killer.join(60)
    assert len(killer.killed) == kills
    first, *others = outcomes
    if kills == 1:
        assert first.status == "done"
        assert_same_features([case.case_id for case in cases], expected_out, tmp_path)
    else:
        assert first.status == "failed"
        assert first.message == (f"{cases[0].segmentation}: the Dask worker extracting this case died, and again on "
                                 "the retry (out of memory?); no output was written")
        assert not list(tmp_path.glob(f"{cases[0].case_id}_den.*"))
    assert [outcome.status for outcome in others] == ["done", "done"]
    assert_same_features([outcome.case.case_id for outcome in others], expected_out, tmp_path)
