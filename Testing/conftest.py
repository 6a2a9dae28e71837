"""Shared fixtures: the real data folder beside the checkout, and results reused across tests (TensorFlow is slow)."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"
PAT0001 = DATA / "brats2015" / "pat0001"
PAT0001_LABELS = PAT0001 / "OTMultiClass.nii.gz"
PAT0001_FLAIR = PAT0001 / "Flair_subtrMeanDivStd.nii.gz"
SLICER_SEGMENTATION = DATA / "slicerio" / "Segmentation.seg.nrrd"


def relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference divided by the largest absolute expected value."""
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write an array as a NIfTI file and return its path."""
    nibabel.save(nibabel.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def run_cli(arguments: list, capsys) -> tuple[int, list[str]]:
    """Run den-extract quietly; return its exit status and its output lines (stderr's, then stdout's)."""
    from DENExtractorLib.cli import main

    status = main([str(argument) for argument in arguments] + ["--quiet"])
    captured = capsys.readouterr()
    return status, captured.err.strip().splitlines() + captured.out.strip().splitlines()


def assert_refused(path, fault: str, out_dir, capsys, extra: tuple = (), as_weights_for=None) -> None:
    """den-extract on ``path`` fails with one error line naming the file and the fault, and writes nothing.

    With ``as_weights_for``, ``path`` is given as ``--weights`` for that segmentation instead.
    """
    arguments = [as_weights_for, "--weights", path] if as_weights_for is not None else [path]
    status, lines = run_cli([*arguments, "-o", out_dir, *extra], capsys)
    errors = [line for line in lines if "error:" in line]
    assert status != 0
    assert lines == errors and len(errors) == 1, lines
    assert str(path) in errors[0] and fault in errors[0], errors[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.fixture(scope="session")
def reference_extractor():
    """One extractor with the default settings (reference mode, bundled weights), its model built once."""
    from DENExtractorLib import DENExtractor

    return DENExtractor()


@pytest.fixture(scope="session")
def reference_result(reference_extractor):
    """DEN features of the real BraTS case pat0001 in reference mode (bundled weights)."""
    return reference_extractor.extract_file(PAT0001_LABELS)


@pytest.fixture(scope="session")
def small_case(tmp_path_factory) -> Path:
    """A small synthetic glioblastoma label map (64x64x40) written as NIfTI."""
    from DENExtractorLib.demo import write_synthetic_case

    return write_synthetic_case(tmp_path_factory.mktemp("small") / "small_case.nii.gz", shape=(64, 64, 40), seed=3)
from cohort_fixtures import one_process_run  # noqa: E402,F401  (the cohort runners' shared reference run)
from cohort_fixtures import cases_csv_run  # noqa: E402,F401  (the cases CSV run every runner must equal)
