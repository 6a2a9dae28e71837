"""Interrupted runs and --resume: a case's outputs are one unit, SIGTERM behaves like Ctrl-C, damaged old outputs are
recomputed, and nothing of ours is left half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest
from cohort_fixtures import (
    assert_the_table_lists_every_case_with_outputs_and_nothing_is_partial,
    interrupt_mid_run,
    write_long_cohort,
)
from DENExtractorLib.demo import synthetic_glioblastoma
from DENExtractorLib.hashing import file_sha256
from DENExtractorLib.outputs.atomic import PARTIAL_PREFIX
from helpers import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]

SMALL_SHAPE = (48, 48, 24)


def case_statuses(lines: list[str]) -> dict[str, str]:
    """{case id: status} from den-extract's per-case lines ("ID: done, ..." / "ID: resumed, ...")."""
    statuses = {}
    for line in lines:
        case_id, _, rest = line.partition(": ")
        if rest.startswith(("done,", "resumed,")):
            statuses[case_id] = rest.split(",")[0]
    return statuses


@pytest.fixture(scope="module")
def nifti_case(tmp_path_factory):
    """A small synthetic glioblastoma as NIfTI."""
    from DENExtractorLib.demo import write_synthetic_case

    return write_synthetic_case(tmp_path_factory.mktemp("case") / "case.nii.gz", shape=SMALL_SHAPE, seed=5)


def test_resume_never_pairs_new_features_with_old_provenance(nifti_case, tmp_path, capsys):
    out_dir, other_dir = tmp_path / "out", tmp_path / "other"
    run_cli([nifti_case, "-o", out_dir, "--labels", "1"], capsys)
    kept = np.load(out_dir / "case_den.npy")
    run_cli([nifti_case, "-o", other_dir], capsys)
    # A kill right after the .npy was replaced leaves the new run's matrix beside the old run's provenance.
    shutil.copyfile(other_dir / "case_den.npy", out_dir / "case_den.npy")
    status, lines = run_cli([nifti_case, "-o", out_dir, "--labels", "1", "--resume"], capsys)
    assert status == 0 and case_statuses(lines) == {"case": "done"}
    assert np.array_equal(np.load(out_dir / "case_den.npy"), kept)
    recorded = json.loads((out_dir / "case_den.json").read_text())["outputs"]["npy"]["sha256"]
    assert recorded == file_sha256(out_dir / "case_den.npy")


def test_resume_notices_a_changed_detached_nrrd_data_file(tmp_path, capsys):
    labels, _ = synthetic_glioblastoma(SMALL_SHAPE, seed=5)
    header = tmp_path / "case.nhdr"
    header.write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 48 48 24\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nkinds: domain domain domain\nencoding: raw\n"
        "space origin: (0,0,0)\ndata file: case.raw\n"
    )
    (tmp_path / "case.raw").write_bytes(labels.tobytes(order="F"))
    out_dir = tmp_path / "out"
    run_cli([header, "-o", out_dir], capsys)
    before = np.load(out_dir / "case_den.npy")
    (tmp_path / "case.raw").write_bytes(np.where(labels == 1, 4, labels).astype(np.uint8).tobytes(order="F"))
    status, lines = run_cli([header, "-o", out_dir, "--resume"], capsys)
    assert status == 0 and case_statuses(lines) == {"case": "done"}
    assert not np.array_equal(np.load(out_dir / "case_den.npy"), before)
    status, lines = run_cli([header, "-o", out_dir, "--resume"], capsys)
    assert case_statuses(lines) == {"case": "resumed"}


def damage(out_dir, how: str) -> None:
    """Damage a finished case's outputs the way crashes, disks and people do."""
    json_path, npy_path = out_dir / "case_den.json", out_dir / "case_den.npy"
    record = json.loads(json_path.read_text())
    if how == "list":
        json_path.write_text("[1, 2, 3]")
    elif how == "null":
        json_path.write_text("null")
    elif how == "missing keys":
        json_path.write_text(json.dumps({"format": record["format"], "outputs": record["outputs"]}))
    elif how == "rows out of range":
        record["features"]["foreground_rows"] = [0, 10_000]
        json_path.write_text(json.dumps(record))
    elif how == "truncated npy":
        npy_path.write_bytes(npy_path.read_bytes()[:1000])
    elif how == "garbage":
        json_path.write_bytes(os.urandom(300))


@pytest.mark.parametrize("how", ["list", "null", "missing keys", "rows out of range", "truncated npy", "garbage"])
def test_resume_recomputes_a_case_whose_old_outputs_are_damaged(nifti_case, tmp_path, capsys, how):
    out_dir = tmp_path / "out"
    run_cli([nifti_case, "-o", out_dir], capsys)
    expected = np.load(out_dir / "case_den.npy")
    damage(out_dir, how)
    status, lines = run_cli([nifti_case, "-o", out_dir, "--resume"], capsys)
    assert status == 0 and case_statuses(lines) == {"case": "done"}, lines
    assert np.array_equal(np.load(out_dir / "case_den.npy"), expected)


def test_leftover_temporary_files_of_ours_are_removed_by_the_next_run(nifti_case, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / f"{PARTIAL_PREFIX}x1y2.npy").write_bytes(b"half")
    (out_dir / "notes.txt").write_text("the user's own file")
    run_cli([nifti_case, "-o", out_dir], capsys)
    assert sorted(path.name for path in out_dir.iterdir()) == ["case_den.json", "case_den.npy", "case_den.png", "notes.txt"]


@pytest.fixture(scope="module")
def long_cohort(tmp_path_factory):
    """Twelve real BraTS cases (the two shared ones under several ids), long enough to interrupt mid-run."""
    return write_long_cohort(tmp_path_factory.mktemp("long_cohort"))


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_keeps_finished_cases_and_the_table_and_leaves_no_partial_file(long_cohort, tmp_path, signal_number):
    out_dir = tmp_path / "out"
    stderr = interrupt_mid_run(["--cohort", long_cohort], out_dir, signal_number)
    assert "interrupted; finished cases are kept" in stderr
    assert_the_table_lists_every_case_with_outputs_and_nothing_is_partial(out_dir, 12)
