"""Each value worked out once per process: the weights file is read for its hash once in a --resume cohort, and
the settings' record is the one every writer and reader of settings shares."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from DENExtractorLib.settings import ExtractionSettings

pytestmark = pytest.mark.slow

CASES = 6

# Runs den-extract in this interpreter with an audit hook counting every open() of the weights file by Python code
# (hashing reads it with open(); h5py's own C-level reads are not Python opens and are not counted).
COUNTING_RUN = """
import sys
from pathlib import Path
weights = str(Path(sys.argv[1]).resolve())
opened = []
def hook(event, arguments):
    if event == "open" and isinstance(arguments[0], str) and str(Path(arguments[0]).resolve()) == weights:
        opened.append(1)
sys.addaudithook(hook)
from DENExtractorLib.cli.extract import main
status = main(sys.argv[2:])
print("OPENED", len(opened), "STATUS", status)
"""


def _weights_file(folder) -> str:
    """A user's weights file: the bundled weights saved as .weights.h5."""
    from DENExtractorLib import build_model

    path = folder / "mine.weights.h5"
    build_model().save_weights(str(path))
    return str(path)


def test_a_resumed_cohort_hashes_the_weights_file_once(tmp_path):
    from DENExtractorLib.demo import write_synthetic_case

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for index in range(CASES):
        write_synthetic_case(cohort / f"case{index}.nii.gz", shape=(40, 40, 12), seed=index + 1)
    weights = _weights_file(tmp_path)
    run = [sys.executable, "-c", COUNTING_RUN, weights, "--cohort", str(cohort), "-o", str(tmp_path / "out"),
           "--weights", weights, "--no-png", "--quiet", "--resume"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert "STATUS 0" in first.stdout, first.stderr
    again = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert "STATUS 0" in again.stdout, again.stderr
    assert f"{CASES} resumed" in again.stderr
    assert "OPENED 1 " in again.stdout, again.stdout  # once for the run, not once per case


def test_settings_records_round_trip_and_workers_hash_for_themselves(tmp_path):
    weights = _weights_file(tmp_path)
    settings = ExtractionSettings("oriented", None, (4, 1), weights)
    record = settings.record()
    assert record == {"mode": "oriented", "plane": "axial", "labels": [1, 4], "weights": weights, "label_max": 4.0}
    assert ExtractionSettings.from_record(record).record() == record
    assert ExtractionSettings.from_record(ExtractionSettings().record()) == ExtractionSettings()
    identity = settings.identity
    assert settings.identity is identity  # worked out once
    sent = pickle.loads(pickle.dumps(settings))
    assert vars(sent)["_identity"] is None  # a worker process hashes the file it sees itself
    assert sent == settings and sent.identity == identity
