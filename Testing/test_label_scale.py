"""Oriented mode's fixed label scale: a label value is the same network input in every case (default scale 4,
BraTS), a label above the scale is refused in one line, ``case`` keeps the former per-case divisor, and the scale
is recorded in provenance. Reference mode keeps the published per-case divisor (pinned by test_network.py and
test_preprocessing_modes.py)."""

from __future__ import annotations

import numpy as np
import pytest
from DENExtractorLib import load_segmentation
from DENExtractorLib.errors import DENError
from DENExtractorLib.extraction.extractor import prepare_stack
from DENExtractorLib.settings import ExtractionSettings
from DENExtractorLib.volume import Volume
from helpers import PAT0001, run_cli, save_nifti


def inputs_at_label(volume: Volume, settings: ExtractionSettings, label: int) -> np.ndarray:
    """The distinct network-input values of the pixels whose resized label is ``label``."""
    stack = prepare_stack(settings, volume)
    batch = stack.batch(0, len(stack.foreground_rows))[..., 0]
    return np.unique(batch[stack.resized == label])


@pytest.mark.needs_data
def test_label_two_is_the_same_input_in_pat0001_and_in_a_case_with_labels_one_and_two():
    brats = load_segmentation(PAT0001 / "OTMultiClass.nii.gz")  # labels 0..4
    small = np.where(brats.data > 2, 0, brats.data).astype(np.float32)  # only necrosis (1) and oedema (2) left
    two_labels = Volume(small, brats.affine, "labels-1-2", "0" * 64)
    oriented = ExtractionSettings(mode="oriented")

    assert inputs_at_label(brats, oriented, 2).tolist() == inputs_at_label(two_labels, oriented, 2).tolist() == [0.5]
    assert inputs_at_label(two_labels, oriented, 1).tolist() == [0.25]
    per_case = ExtractionSettings(mode="oriented", label_max="case")  # before the fixed scale: 2 / 2 in this case
    assert inputs_at_label(two_labels, per_case, 2).tolist() == [1.0]
    assert inputs_at_label(brats, per_case, 2).tolist() == [0.5]


@pytest.mark.needs_data
def test_the_default_scale_gives_a_full_brats_case_the_inputs_of_the_per_case_divisor():
    brats = load_segmentation(PAT0001 / "OTMultiClass.nii.gz")
    fixed = prepare_stack(ExtractionSettings(mode="oriented"), brats)
    per_case = prepare_stack(ExtractionSettings(mode="oriented", label_max="case"), brats)
    assert np.array_equal(fixed.batch(0, 40), per_case.batch(0, 40))
    assert fixed.parameters["label_max"] == 4.0 and per_case.parameters["label_max"] == "case"
    assert fixed.parameters["divisor"] == per_case.parameters["divisor"] == 4.0


def test_a_label_above_the_scale_is_refused_and_a_larger_scale_accepts_it(tmp_path, capsys):
    data = np.zeros((12, 12, 6), dtype=np.uint8)
    data[3:9, 3:9, 2:4] = 6
    path = save_nifti(tmp_path / "six.nii.gz", data)

    status, lines = run_cli([str(path), "--mode", "oriented", "-o", str(tmp_path / "out"), "--no-png"], capsys)
    assert status == 1 and len(lines) == 1, lines  # the case failed (exit 1), in one line
    assert f"{path}: label value 6 exceeds the label scale 4: give --label-max 6 (or more)" in lines[0]
    volume = load_segmentation(path)
    assert inputs_at_label(volume, ExtractionSettings(mode="oriented", label_max=8), 6).tolist() == [0.75]


@pytest.mark.parametrize("value, fault", [
    ("0", "must be a positive number"), ("-2", "must be a positive number"), ("inf", "must be a positive number"),
    ("four", "'four' is neither a positive number nor 'case'"),
])
def test_bad_label_scales_get_one_line(value, fault):
    with pytest.raises(DENError, match=f"label_max: .*{fault}"):
        ExtractionSettings(mode="oriented", label_max=value)


def test_a_label_scale_in_reference_mode_is_refused():
    with pytest.raises(DENError, match="label_max: a label scale applies to oriented mode"):
        ExtractionSettings(label_max=4)


@pytest.mark.slow
def test_resume_never_reuses_outputs_computed_with_another_label_scale(tmp_path, capsys):
    from DENExtractorLib.cohorts.resume import reusable_outputs
    from DENExtractorLib.outputs.files import output_paths

    data = np.zeros((16, 16, 8), dtype=np.uint8)
    data[4:12, 4:12, 2:6] = 1
    data[6:10, 6:10, 3:5] = 2
    path = save_nifti(tmp_path / "case.nii.gz", data)
    status, _ = run_cli([path, "--mode", "oriented", "--label-max", "case", "-o", tmp_path / "out", "--no-png"], capsys)
    assert status == 0
    paths = output_paths(tmp_path / "out", "case")

    assert reusable_outputs(paths, path, None, ExtractionSettings(mode="oriented", label_max="case"), False) is not None
    assert reusable_outputs(paths, path, None, ExtractionSettings(mode="oriented"), False) is None
    assert reusable_outputs(paths, path, None, ExtractionSettings(mode="oriented", label_max=2), False) is None
