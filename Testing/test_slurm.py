"""A real SLURM: a one-node cluster (Debian's ``slurm-wlm`` and ``munge``, started as root on 127.0.0.1) runs the
README's sbatch array example plus ``--merge``, and dask-jobqueue's ``SLURMCluster`` with ``--scheduler``; both give
the one-process features bit for bit and the same ``den_cohort.csv``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cohort_fixtures import assert_same_cohort_output
from DENExtractorLib.cli.extract import main
from helpers import REPO_ROOT

pytestmark = [pytest.mark.scale, pytest.mark.root, pytest.mark.slow, pytest.mark.needs_data]

DEN_EXTRACT = f"{sys.executable} -m DENExtractorLib.cli"
"""den-extract as this checkout's command (the README's ``den-extract`` where the package is installed)."""
START_SECONDS = 120
JOB_SECONDS = 900


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def install_slurm_when_missing() -> None:
    """Install Debian's slurm-wlm and munge with apt-get when their daemons are not there (fails loudly if it
    cannot, with apt-get's own words)."""
    if all(shutil.which(name) for name in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr[-2000:]}"


def slurm_conf(folder: Path, host: str, munge_socket: Path) -> str:
    """slurm.conf of a one-node cluster on 127.0.0.1: root runs everything, no cgroups, no accounting."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""ClusterName=den
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
SlurmctldLogFile={folder / "slurmctld.log"}
SlurmdLogFile={folder / "slurmd.log"}
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={int(memory_mb * 0.8)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node SLURM (munged, slurmctld, slurmd in the foreground, each stopped by its process id at
    the end); yields the environment that points sbatch at it."""
    assert os.geteuid() == 0, "the SLURM test starts system daemons: run it as root (CI does)"
    install_slurm_when_missing()
    folder = tmp_path_factory.mktemp("slurm")
    for name in ("state", "spool"):
        (folder / name).mkdir()
    key = Path("/etc/munge/munge.key")
    if not key.is_file():
        key = folder / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    munge_socket = folder / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, host, munge_socket))
    environment = dict(os.environ, SLURM_CONF=str(conf), PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    processes = []
    try:
        subprocess.run(["munged", "--force", f"--socket={munge_socket}", f"--key-file={key}",
                        f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
                        f"--seed-file={folder / 'munged.seed'}"], check=True, capture_output=True)
        for daemon in (["slurmctld", "-D", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf), "-N", host]):
            with open(folder / f"{daemon[0]}.out", "wb") as log:  # the daemon keeps its own copy of the handle
                processes.append(subprocess.Popen(daemon, env=environment, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + START_SECONDS
        state = ""
        while time.monotonic() < deadline and state != "idle":
            time.sleep(1)
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=environment, capture_output=True,
                                   text=True, check=False).stdout.strip()
        assert state == "idle", f"the SLURM node did not come up ({state!r}): see {folder}/*.log"
        yield environment
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
        pid_file = folder / "munged.pid"
        if pid_file.is_file():
            os.kill(int(pid_file.read_text().strip()), 15)


def test_the_readme_sbatch_array_then_merge_equals_one_process(slurm, cases_csv_run, tmp_path):
    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "den_out"
    script = tmp_path / "den.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        "#SBATCH --job-name=den\n"
        "#SBATCH --array=0-1                 # K = 2 parts: ids 0..1\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=2G\n"
        "#SBATCH --time=01:00:00\n"
        f"#SBATCH --output={tmp_path}/den-%A_%a.log\n"
        f"{DEN_EXTRACT} --cases {cases_csv} -o {out} --num-parts 2 --resume --quiet --no-png\n"
    )
    submitted = subprocess.run(["sbatch", "--wait", str(script)], env=slurm, capture_output=True, text=True,
                               timeout=JOB_SECONDS, check=False)
    logs = "".join(path.read_text() for path in sorted(tmp_path.glob("den-*.log")))
    assert submitted.stdout.startswith("Submitted batch job"), submitted.stderr
    # sbatch --wait exits with the array's highest status: 1, the part holding the CSV's missing case
    assert submitted.returncode == 1, (submitted.stderr, logs)
    assert sorted(path.name for path in out.glob("den_cohort.part-*.csv")) == [
        "den_cohort.part-0-of-2.csv", "den_cohort.part-1-of-2.csv"]
    merged = subprocess.run([*DEN_EXTRACT.split(), "--merge", str(out)], env=slurm, capture_output=True, text=True,
                            check=False)
    assert merged.returncode == 1 and "4 case(s): 3 complete, 1 missing" in merged.stderr, merged.stderr
    assert_same_cohort_output(expected_out, out)


def test_dask_jobqueue_slurm_cluster_with_scheduler_equals_one_process(slurm, cases_csv_run, tmp_path, monkeypatch,
                                                                       capsys):
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    cases_csv, expected_out = cases_csv_run
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    with SLURMCluster(cores=1, processes=1, memory="2GB", walltime="01:00:00", python=sys.executable,
                      scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
                      worker_extra_args=["--host", "127.0.0.1"], log_directory=str(tmp_path / "logs"),
                      job_script_prologue=[f"export PYTHONPATH={REPO_ROOT / 'DENExtractor'}",
                                           f"export SLURM_CONF={slurm['SLURM_CONF']}"]) as cluster:
        cluster.scale(jobs=2)
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=START_SECONDS)
        out = tmp_path / "den_out"
        status = main(["--cases", str(cases_csv), "-o", str(out), "--no-png", "--quiet",
                       "--scheduler", cluster.scheduler_address])
    assert status == 1, capsys.readouterr().err  # the CSV's missing case fails, the others are done
    assert_same_cohort_output(expected_out, out)
