"""Cohort runs: the published folder layout, one corrupt case that does not stop the others, the table, resume."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from DENExtractorLib import DENError
from DENExtractorLib.cli.extract import main
from DENExtractorLib.cohorts.cases import find_cases
from helpers import DATA, PAT0001_LABELS

pytestmark = [pytest.mark.needs_data]

PATTERN = "{id}_nifti/{id}_tumor_segmentation.nii.gz"


@pytest.fixture()
def cohort(tmp_path):
    """A cohort in the published layout: two real BraTS cases and one truncated file."""
    root = tmp_path / "cohort"
    for case_id in ("pat0001", "pat0002"):
        folder = root / f"{case_id}_nifti"
        folder.mkdir(parents=True)
        (folder / f"{case_id}_tumor_segmentation.nii.gz").symlink_to(DATA / "brats2015" / case_id / "OTMultiClass.nii.gz")
    broken = root / "broken_nifti"
    broken.mkdir()
    (broken / "broken_tumor_segmentation.nii.gz").write_bytes(PAT0001_LABELS.read_bytes()[:40_000])
    (root / "unrelated_nifti").mkdir()
    (root / "unrelated_nifti" / "other_tumor_segmentation.nii.gz").write_bytes(b"does not match the pattern")
    return root


def read_table(path) -> dict[str, dict]:
    """The cohort CSV as {case id: row}."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def test_the_published_layout_is_expressible(cohort):
    cases = find_cases(cohort, PATTERN).cases
    assert [case.case_id for case in cases] == ["broken", "pat0001", "pat0002"]
    assert cases[1].segmentation.name == "pat0001_tumor_segmentation.nii.gz"


def test_no_matching_case_is_an_error(cohort):
    with pytest.raises(DENError, match="no file matches"):
        find_cases(cohort, "{id}/missing.nii.gz")


@pytest.mark.slow
def test_one_corrupt_case_never_stops_the_others_and_resume_skips_finished_ones(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["--cohort", str(cohort), "--pattern", PATTERN, "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "broken_tumor_segmentation.nii.gz: the voxel data cannot be read" in err
    assert "3 case(s): 2 done, 0 resumed, 1 failed" in err
    table = read_table(out / "den_cohort.csv")
    assert {case: row["status"] for case, row in table.items()} == {"broken": "failed", "pat0001": "done", "pat0002": "done"}
    features = np.load(out / "pat0001_den.npy")
    provenance = json.loads((out / "pat0001_den.json").read_text())
    foreground = provenance["features"]["foreground_rows"]
    assert int(table["pat0001"]["foreground_rows"]) == len(foreground)
    row = table["pat0001"]
    pooled = np.array([float(row[f"{kind}_{i}"]) for kind in ("mean", "max") for i in range(4096)])
    assert np.array_equal(pooled.astype(np.float32), np.concatenate([features[foreground].mean(0), features[foreground].max(0)]))
    assert not list(out.glob("broken_den.*")) and not list(out.glob(".*partial*"))

    finished = {path.name: path.stat().st_mtime_ns for path in out.glob("pat*_den.*")}
    (cohort / "broken_nifti" / "broken_tumor_segmentation.nii.gz").write_bytes(PAT0001_LABELS.read_bytes())
    status = main(["--cohort", str(cohort), "--pattern", PATTERN, "-o", str(out), "--quiet", "--resume"])
    assert status == 0
    assert "3 case(s): 1 done, 2 resumed, 0 failed" in capsys.readouterr().err
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("pat*_den.*")} == finished
    resumed_table = read_table(out / "den_cohort.csv")
    assert resumed_table["pat0001"] == {**table["pat0001"], "status": "resumed"}
    assert resumed_table["broken"]["mean_0"] == resumed_table["pat0001"]["mean_0"]  # now a copy of pat0001


@pytest.mark.slow
def test_resume_recomputes_incomplete_or_outdated_outputs(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    arguments = ["--cohort", str(cohort), "--pattern", "{id}_nifti/{id}_tumor_segmentation.nii.gz", "-o", str(out), "--quiet"]
    main(arguments)
    (out / "pat0001_den.npy").write_bytes(b"half-written")
    (out / "pat0002_den.png").unlink()
    capsys.readouterr()
    main([*arguments, "--resume"])
    assert "2 done, 0 resumed" in capsys.readouterr().err
    assert main([*arguments, "--resume", "--mode", "oriented"]) == 2  # other settings: never replaced silently
    assert "--overwrite" in capsys.readouterr().err
    main([*arguments, "--resume", "--mode", "oriented", "--overwrite"])
    assert "2 done, 0 resumed" in capsys.readouterr().err
    assert json.loads((out / "pat0001_den.json").read_text())["settings"]["mode"] == "oriented"


@pytest.mark.slow
def test_several_files_and_a_progress_summary(tmp_path, capsys, small_case):
    out = tmp_path / "out"
    status = main([str(PAT0001_LABELS), str(small_case), "-o", str(out)])
    assert status == 0
    err = capsys.readouterr().err
    assert "2 case(s): 2 done" in err
    assert sorted(path.name for path in out.iterdir()) == [
        "pat0001_den.json", "pat0001_den.npy", "pat0001_den.png",
        "small_case_den.json", "small_case_den.npy", "small_case_den.png",
    ]
    assert oct(os.stat(out / "small_case_den.npy").st_mode & 0o777) != oct(0o600)


@pytest.mark.slow
def test_image_mode_in_a_cohort_with_one_case_missing_its_mri(tmp_path, capsys):
    root = tmp_path / "brats"
    for case_id in ("pat0001", "pat0002"):
        (root / case_id).mkdir(parents=True)
        (root / case_id / "OTMultiClass.nii.gz").symlink_to(DATA / "brats2015" / case_id / "OTMultiClass.nii.gz")
    (root / "pat0001" / "Flair.nii.gz").symlink_to(DATA / "brats2015" / "pat0001" / "Flair_subtrMeanDivStd.nii.gz")
    out = tmp_path / "out"
    status = main(["--cohort", str(root), "--pattern", "{id}/OTMultiClass.nii.gz", "--image-pattern", "{id}/Flair.nii.gz",
                   "-o", str(out), "--quiet", "--no-png"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{root / 'pat0002' / 'Flair.nii.gz'}: no such file" in err
    provenance = json.loads((out / "pat0001_den.json").read_text())
    assert provenance["image"]["source"].endswith("pat0001/Flair.nii.gz")
    assert read_table(out / "den_cohort.csv")["pat0002"]["status"] == "failed"
