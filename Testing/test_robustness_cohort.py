"""den-robustness end to end on the shared BraTS and CaPTk cases (cropped along the slicing axis, few
perturbations, to stay small): the tables, pictures and summary; the original input equal to den-extract's
features; the same numbers from one process, two worker processes and a Dask cluster; a killed run resumed; and
den-train's robustness filter on a generated cohort."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import nibabel
import numpy as np
import pytest
from DENExtractorLib.readers import load_segmentation
from DENExtractorLib.robustness import rebuild_perturbation
from DENExtractorLib.training.synthetic_cohort import write_labelled_cohort
from helpers import DATA, REPO_ROOT
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]

PLAN = ["--kinds", "dilate,contour", "--contours", "1", "--seed", "11"]
"""Three inputs per case: the original, a dilation and one randomised contour."""
CASE_IDS = ["AAAC0", "pat0001", "pat0002"]
ENVIRONMENT = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"), TF_CPP_MIN_LOG_LEVEL="2")


def den(program: str, *arguments) -> list[str]:
    """The command line of one of the package's commands, run as its own process."""
    return [sys.executable, "-m", f"DENExtractorLib.cli.{program}", *(str(argument) for argument in arguments)]


def run(program: str, *arguments) -> subprocess.CompletedProcess:
    """Run a command to its end; return what it did."""
    return subprocess.run(den(program, *arguments), capture_output=True, text=True, env=ENVIRONMENT, timeout=900,
                          check=False)


@pytest.fixture(scope="module")
def cases_csv(tmp_path_factory):
    """A cases CSV of the CaPTk case and the two BraTS cases, the BraTS label maps cropped to 16 slices through
    the tumour's middle (with their affine, so the geometry is the real one)."""
    folder = tmp_path_factory.mktemp("cases")
    rows = [["case_id", "segmentation"], ["AAAC0", str(DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz")]]
    for case_id in CASE_IDS[1:]:
        image = nibabel.load(DATA / "brats2015" / case_id / "OTMultiClass.nii.gz")
        rows_with_tumour = np.flatnonzero(np.asarray(image.dataobj).any(axis=(1, 2)))
        middle = int(np.median(rows_with_tumour))
        nibabel.save(image.slicer[middle - 8 : middle + 8], folder / f"{case_id}.nii.gz")
        rows.append([case_id, str(folder / f"{case_id}.nii.gz")])
    with open(folder / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return folder / "cases.csv"


@pytest.fixture(scope="module")
def one_process(cases_csv, tmp_path_factory):
    """den-robustness in one process: (output folder, stderr)."""
    output = tmp_path_factory.mktemp("one") / "out"
    finished = run("robustness", "--cases", cases_csv, "-o", output, *PLAN)
    assert finished.returncode == 0, finished.stderr
    return output, finished.stderr


def pooled(folder) -> dict[str, bytes]:
    """Every case's pooled vectors, as bytes."""
    return {case_id: np.load(folder / f"{case_id}_robustness.npy").tobytes() for case_id in CASE_IDS}


def assert_same_numbers(folder, expected) -> None:
    """The cases' pooled vectors are bitwise the expected run's and both tables are byte for byte the same: every
    network kernel runs on one thread in every runner, so the cores a worker gets never move a bit."""
    for case_id in CASE_IDS:
        actual = np.load(folder / f"{case_id}_robustness.npy")
        assert np.array_equal(actual, np.load(expected / f"{case_id}_robustness.npy")), case_id
    for table in ("den_robustness_icc.csv", "den_volume_confound.csv"):
        assert (folder / table).read_bytes() == (expected / table).read_bytes(), table


def test_the_tables_pictures_and_summary_are_written_and_say_what_they_are(one_process):
    output, stderr = one_process
    assert "of 8192 features with ICC(1,1) >= 0.9 on this cohort (3 cases x 3 inputs" in stderr
    assert "features with |r| >= 0.9 against the tumour volume" in stderr
    with open(output / "den_robustness_icc.csv", newline="", encoding="utf-8") as handle:
        icc_rows = list(csv.DictReader(handle))
    assert list(icc_rows[0]) == ["feature", "form", "icc", "ci_low", "ci_high", "mean", "sd"]
    assert len(icc_rows) == 8192 and icc_rows[0]["feature"] == "mean_0" and icc_rows[-1]["feature"] == "max_4095"
    defined = [row for row in icc_rows if row["icc"]]
    assert defined and all(float(row["ci_low"]) <= float(row["icc"]) <= float(row["ci_high"]) for row in defined)
    with open(output / "den_volume_confound.csv", newline="", encoding="utf-8") as handle:
        confound_rows = list(csv.DictReader(handle))
    assert list(confound_rows[0]) == ["feature", "r_volume", "r_slices"] and len(confound_rows) == 8192
    summary = json.loads((output / "den_robustness.json").read_text())
    assert summary["cases"] == CASE_IDS and summary["icc"]["form"] == "1,1"
    assert summary["perturbations"] == ["original", "dilate 1 voxel", "contour randomisation (seed 11)"]
    assert summary["icc"]["at_least"]["0.9"] == sum(float(row["icc"]) >= 0.9 for row in defined)
    for name in ("den_robustness_icc.png", "den_volume_confound.png"):
        with Image.open(output / name) as picture:
            assert picture.size == (1200, 450)


def test_the_original_input_gives_den_extracts_features_and_every_perturbation_is_rebuilt(one_process, cases_csv,
                                                                                         reference_extractor):
    output, _ = one_process
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        paths = {row["case_id"]: row["segmentation"] for row in csv.DictReader(handle)}
    for case_id, path in paths.items():
        vectors = np.load(output / f"{case_id}_robustness.npy")
        record = json.loads((output / f"{case_id}_robustness.json").read_text())
        assert np.array_equal(vectors[0], reference_extractor.extract_file(path).pooled)
        assert not np.array_equal(vectors[1], vectors[0])
        segmentation = load_segmentation(path)
        for index, member in enumerate(record["perturbations"]):
            rebuilt = rebuild_perturbation(segmentation, member, record["settings"]["labels"])
            assert np.array_equal(reference_extractor.extract(rebuilt).pooled, vectors[index])


@pytest.mark.scale
def test_two_worker_processes_and_a_dask_cluster_give_the_same_numbers(one_process, cases_csv, tmp_path):
    output, _ = one_process
    for name, options in (("jobs", ["--jobs", "2"]), ("dask", ["--scheduler", "local", "--jobs", "2"])):
        finished = run("robustness", "--cases", cases_csv, "-o", tmp_path / name, *PLAN, *options)
        assert finished.returncode == 0, finished.stderr
        assert_same_numbers(tmp_path / name, output)


@pytest.mark.scale
def test_array_parts_then_merge_give_the_one_process_numbers_and_say_what_is_missing(one_process, cases_csv, tmp_path):
    """Two parts (the second told its number by SLURM's variable), merged: the numbers of one process. Before the
    second part, the merge names the cases missing and exits 1; a part run with another plan is refused."""
    output, _ = one_process
    target = tmp_path / "parts"
    first = run("robustness", "--cases", cases_csv, "-o", target, *PLAN, "--num-parts", "2", "--part-id", "0")
    assert first.returncode == 0, first.stderr
    assert "part 0 of 2: 2 of 2 case(s) finished; when every part has run: den-robustness --merge" in first.stderr
    assert not (target / "den_robustness_icc.csv").exists()

    early = run("robustness", "--merge", target)
    assert early.returncode == 1
    assert f"case {CASE_IDS[1]} has no intact outputs made with the manifest's inputs, settings and plan" in early.stderr
    assert "3 case(s) in 2 part(s): 2 finished, 1 missing" in early.stderr

    other_plan = run("robustness", "--cases", cases_csv, "-o", target, *PLAN[:-1], "12", "--num-parts", "2",
                     "--part-id", "1")
    assert other_plan.returncode == 2 and "another part of this array job ran with a different" in other_plan.stderr

    second = subprocess.run(den("robustness", "--cases", cases_csv, "-o", target, *PLAN, "--num-parts", "2"),
                            capture_output=True, text=True, env=dict(ENVIRONMENT, SLURM_ARRAY_TASK_ID="1"),
                            timeout=900, check=False)
    assert second.returncode == 0, second.stderr
    merged = run("robustness", "--merge", target)
    assert merged.returncode == 0, merged.stderr
    assert_same_numbers(target, output)
    assert json.loads((target / "den_robustness.json").read_text())["cases"] == CASE_IDS


def test_a_killed_run_resumes_and_ends_with_the_same_numbers(one_process, cases_csv, tmp_path):
    output, _ = one_process
    target = tmp_path / "out"
    process = subprocess.Popen(den("robustness", "--cases", cases_csv, "-o", target, *PLAN), env=ENVIRONMENT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = target / f"{CASE_IDS[0]}_robustness.json"
    deadline = time.monotonic() + 600
    while not first.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert first.is_file() and not (target / "den_robustness.json").is_file()
    kept = first.read_bytes()

    finished = run("robustness", "--cases", cases_csv, "-o", target, *PLAN, "--resume")

    assert finished.returncode == 0, finished.stderr
    assert f"{CASE_IDS[0]}: resumed, 3 inputs" in finished.stderr
    assert first.read_bytes() == kept
    assert pooled(target) == pooled(output)
    assert not [path.name for path in target.iterdir() if path.name.startswith(".den-partial")]


def test_den_train_keeps_only_the_features_robust_on_its_training_cases(tmp_path):
    labels = write_labelled_cohort(tmp_path / "cohort", cases=12, shape=(32, 32, 16), seed=2, whole_lesion=True)
    robustness = run("robustness", "--cases", labels, "-o", tmp_path / "robustness", "--kinds", "dilate")  # lesions
    # of a few voxels: a randomised contour may leave nothing of them
    assert robustness.returncode == 0, robustness.stderr

    trained = run("train", "--cases", labels, "--label-column", "necrosis", "-o", tmp_path / "model", "--epochs", "2",
                  "--seed", "1", "--min-icc", "0.75", "--robustness", tmp_path / "robustness" / "den_robustness_icc.csv")

    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "model" / "den_trained.json").read_text())
    chosen = record["baseline"]["robustness_filter"]
    assert chosen["training_cases"] == len(record["split"]["train"]) < 12 and chosen["form"] == "ICC(1,1)"
    assert 0 < chosen["features_passed"] < 8192 and chosen["min_icc"] == 0.75
    assert record["baseline"]["base_weights"]["fit"]["features_kept"] <= chosen["features_passed"]
    assert record["hyperparameters"]["min_icc"] == 0.75
    card = (tmp_path / "model" / "den_trained_card.md").read_text()
    assert f"{chosen['features_passed']} of 8192 features passed" in card and "ICC(1,1) >= 0.75" in card
    assert f"robustness filter: {chosen['features_passed']} of 8192 features" in trained.stderr
