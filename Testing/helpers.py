"""Helpers the tests import: where the real data lie, writing NIfTI files, running den-extract, refusal checks,
weights files of DEN's shapes."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel
import numpy as np
from DENExtractorLib.network.architecture import weight_specs

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
    from DENExtractorLib.cli.extract import main

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


def den_weights_h5(path, fill=0.0, bad_value=None):
    """A ``.weights.h5`` with exactly DEN's dataset shapes (float32), optionally one bad value in the last bias."""
    with h5py.File(path, "w") as handle:
        for index, spec in enumerate(weight_specs()):
            values = np.full(spec.shape, fill, dtype=np.float32)
            if bad_value is not None and index == len(weight_specs()) - 1:
                values.flat[0] = bad_value
            handle.create_dataset(f"layers/{index}/vars/0", data=values)
    return path
