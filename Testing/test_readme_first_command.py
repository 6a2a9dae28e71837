"""The README's first command, as a newcomer runs it: in a fresh ``git clone`` of this repository, with and without
the shared real data beside the clone.

The command's set-up part (``python3 -m venv .venv && .venv/bin/pip install -q -e .``) is replaced by this
interpreter with the clone's ``DENExtractor/`` folder first on ``PYTHONPATH`` (no network or package index is needed):
the rest of the command, its arguments, the clone and its working folder are the README's own.
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, REPO_ROOT

SETUP = "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
COMMAND = ".venv/bin/den-extract"
GETTING_STARTED = REPO_ROOT / "docs" / "getting-started.md"  # quotes the demo's first line, both ways


def readme_first_command() -> list[str]:
    """The first command line of the README's first ``bash`` block, as den-extract arguments (set-up checked)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    line = next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))
    assert line.startswith(SETUP + COMMAND + " "), line
    return shlex.split(line[len(SETUP + COMMAND):])


def test_ci_runs_the_readmes_test_command():
    block = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and commands[1].endswith("-m pytest -n 2 Testing")
    assert commands[1] in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def fresh_clone(folder: Path) -> Path:
    """A ``git clone`` of this repository (its committed state) into ``folder/DENExtractor``."""
    clone = folder / "DENExtractor"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    return clone


def run_in(clone: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    """Run den-extract from the clone's own code, in the clone's folder, as the README's command does."""
    environment = {**os.environ, "PYTHONPATH": str(clone / "DENExtractor")}
    return subprocess.run([sys.executable, "-m", "DENExtractorLib.cli", *arguments], check=False, cwd=clone,
                          env=environment, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_first_command_in_a_clone_without_shared_data_runs_the_synthetic_demo(tmp_path, reference_extractor):
    clone = fresh_clone(tmp_path)
    assert not (clone.parent / "shared").exists()
    arguments = readme_first_command()
    finished = run_in(clone, arguments)
    assert finished.returncode == 0, finished.stderr
    first_line = finished.stderr.splitlines()[0]
    assert "synthetic glioblastoma" in first_line and first_line in GETTING_STARTED.read_text(encoding="utf-8")
    out = clone / arguments[arguments.index("-o") + 1]
    case = out / "synthetic_glioblastoma.nii.gz"
    features = np.load(out / "synthetic_glioblastoma_den.npy")
    assert features.shape == (240, 4096) and features.max() > 0
    assert (out / "synthetic_glioblastoma_den.png").is_file() and (out / "synthetic_glioblastoma_den.json").is_file()
    assert np.array_equal(features, reference_extractor.extract_file(case).features)


@pytest.mark.slow
@pytest.mark.needs_data
def test_first_command_in_a_clone_beside_shared_data_runs_the_real_cases(tmp_path, reference_result):
    clone = fresh_clone(tmp_path)
    (tmp_path / "shared").symlink_to(DATA.parent, target_is_directory=True)
    arguments = readme_first_command()
    finished = run_in(clone, arguments)
    assert finished.returncode == 0, finished.stderr
    first_line = finished.stderr.splitlines()[0]
    assert "real BraTS 2015" in first_line and first_line in GETTING_STARTED.read_text(encoding="utf-8")
    out = clone / arguments[arguments.index("-o") + 1]
    with (out / "den_cohort.csv").open(newline="") as table:
        rows = list(csv.DictReader(table))
    assert [(row["case_id"], row["status"]) for row in rows] == [("pat0001", "done"), ("pat0002", "done")]
    assert np.array_equal(np.load(out / "pat0001_den.npy"), reference_result.features)
    assert not (out / "synthetic_glioblastoma.nii.gz").exists()
