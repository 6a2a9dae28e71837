"""Array jobs: ``--num-parts K --part-id I`` runs a fixed share on each node; ``--merge OUT`` builds the same table
as a one-process run from the per-case outputs, and lists what is missing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cohort_fixtures import assert_same_cohort_output, read_rows
from DENExtractorLib.cli.extract import main
from DENExtractorLib.cohorts.parts import part_share, resolve_part_id
from DENExtractorLib.errors import DENError
from helpers import DATA

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.needs_data]

RUN = ["--no-png", "--quiet"]


def test_the_share_rule_is_every_kth_case_of_the_sorted_list():
    ids = ["c", "a", "e", "b", "d"]
    shares = [part_share(ids, 2, part, str) for part in range(2)]
    assert shares == [["a", "c", "e"], ["b", "d"]]
    assert part_share(ids, 7, 6, str) == []


def test_the_part_id_comes_from_slurm_or_kubernetes_when_not_given():
    assert resolve_part_id(4, None, {"SLURM_ARRAY_TASK_ID": "3"}) == 3
    assert resolve_part_id(4, None, {"JOB_COMPLETION_INDEX": "2"}) == 2
    assert resolve_part_id(4, 1, {"SLURM_ARRAY_TASK_ID": "3"}) == 1
    outside = r"^SLURM_ARRAY_TASK_ID: part 4 is outside 0..3: parts count from 0 \(with SLURM, submit --array=0-3\)$"
    with pytest.raises(DENError, match=outside):
        resolve_part_id(4, None, {"SLURM_ARRAY_TASK_ID": "4"})
    with pytest.raises(DENError, match="^--part-id: not given, and neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set$"):
        resolve_part_id(4, None, {})
    with pytest.raises(DENError, match="^JOB_COMPLETION_INDEX: 'x' is not a whole number$"):
        resolve_part_id(4, None, {"JOB_COMPLETION_INDEX": "x"})


def test_parts_then_merge_give_the_one_process_table_and_list_what_is_missing(cases_csv_run, tmp_path, monkeypatch, capsys):
    cases_csv, expected_out = cases_csv_run
    out = tmp_path / "shared_out"
    part = ["--cases", str(cases_csv), "-o", str(out), *RUN, "--num-parts", "2"]

    assert main([*part, "--part-id", "1"]) == 0  # sorted ids: lost, pat0001, pat0002, small -> part 1: pat0001, small
    assert sorted(path.name for path in out.glob("*_den.npy")) == ["pat0001_den.npy", "small_den.npy"]
    capsys.readouterr()
    assert main(["--merge", str(out)]) == 1
    err = capsys.readouterr().err
    assert (f"den-extract: missing: pat0002: {DATA / 'brats2015' / 'pat0002' / 'OTMultiClass.nii.gz'}: no complete, "
            f"valid output in {out} (part 0 of 2 has not finished this case: rerun that part with --resume)") in err
    assert "4 case(s): 2 complete, 2 missing; cohort table:" in err

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert main(part) == 1  # part 0 holds the lost case, which fails
    assert json.loads((out / "den_cohort_manifest.json").read_text())["num_parts"] == 2
    capsys.readouterr()
    assert main(["--merge", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (f"den-extract: missing: lost: {cases_csv} row 3: case 'lost': segmentation file not "
                                   f"found: {cases_csv.parent / 'lost_case.nii.gz'}")
    assert "4 case(s): 3 complete, 1 missing" in err
    assert_same_cohort_output(expected_out, out)


def test_merge_rejects_damaged_outputs_and_a_part_with_another_cohort(cases_csv_run, tmp_path, capsys):
    cases_csv, _ = cases_csv_run
    out = tmp_path / "out"
    assert main(["--cases", str(cases_csv), "-o", str(out), *RUN, "--num-parts", "1", "--part-id", "0"]) == 1
    np.save(out / "small_den.npy", np.zeros((24, 4096), dtype=np.float32))  # damaged after its part wrote it
    capsys.readouterr()
    assert main(["--merge", str(out)]) == 1
    err = capsys.readouterr().err
    assert "den-extract: missing: small: " in err
    assert {row["case_id"]: row["status"] for row in read_rows(out / "den_cohort.csv")}["small"] == "failed"

    other = cases_csv.with_name("other.csv")
    other.write_text("\n".join(cases_csv.read_text().splitlines()[:2]) + "\n")
    assert main(["--cases", str(other), "-o", str(out), *RUN, "--num-parts", "1", "--part-id", "0"]) == 2
    assert "another part of this array job ran with a different case list" in capsys.readouterr().err


def test_merge_of_a_folder_no_part_ran_in_is_one_line(tmp_path, capsys):
    assert main(["--merge", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"den-extract: error: {tmp_path}: no den_cohort_manifest.json here: run "
                                               "the parts (--num-parts K --part-id I) into this folder first")


def test_a_manifest_larger_than_any_the_parts_write_is_refused_before_it_is_read(tmp_path, capsys):
    with open(tmp_path / "den_cohort_manifest.json", "wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB declared, nothing on disk
    assert main(["--merge", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"den-extract: error: {tmp_path / 'den_cohort_manifest.json'}: 314572800 bytes is too large for a "
                   "cohort manifest (at most 268435456)")
