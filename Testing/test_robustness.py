"""den-robustness's parts on planted data: the ICC against pingouin and against features of known reliability, the
volume confound on a volume copy, every perturbation on label maps whose answer is known (and rebuilt exactly from
its record), and den-train's robustness filter taking the training cases only."""

from __future__ import annotations

import os

import numpy as np
import pandas
import pingouin
import pytest
from DENExtractorLib.errors import DENError
from DENExtractorLib.robustness import PerturbationPlan, intraclass_correlation, perturb, rebuild_perturbation
from DENExtractorLib.robustness.case_outputs import CASE_FORMAT, case_paths, read_case, write_case
from DENExtractorLib.robustness.cohort_summary import pool_cases, write_cohort_figures
from DENExtractorLib.robustness.confound import volume_confound
from DENExtractorLib.robustness.feature_filter import robust_features
from DENExtractorLib.robustness.perturbations import Perturbation, label_sha256, tumour_volume_mm3
from DENExtractorLib.settings import ExtractionSettings
from DENExtractorLib.volume import Volume

PINGOUIN_TYPES = {"1,1": "ICC(1,1)", "2,1": "ICC(A,1)", "3,1": "ICC(C,1)"}
FEATURES = 8192


def planted(subjects: int, raters: int, reliabilities: list[float], seed: int = 0) -> np.ndarray:
    """(subjects, raters, features): each feature a per-subject constant plus independent noise, the subject part's
    share of the variance being the planted reliability; a fixed shift per rater on the odd features."""
    random = np.random.default_rng(seed)
    share = np.asarray(reliabilities)
    subject = random.normal(size=(subjects, 1, share.size)) * np.sqrt(share)
    noise = random.normal(size=(subjects, raters, share.size)) * np.sqrt(1 - share)
    return 5.0 + subject + noise


@pytest.mark.parametrize("form", ["1,1", "2,1", "3,1"])
def test_the_vectorised_icc_equals_pingouin_on_a_few_features(form):
    values = planted(12, 5, [0.95, 0.7, 0.4, 0.1])
    values[:, :, 1] += np.arange(5) * 0.4  # a systematic rater shift: the forms differ on it
    result = intraclass_correlation(values, form)
    for feature in range(values.shape[2]):
        frame = pandas.DataFrame({"case": np.repeat(np.arange(12), 5), "input": np.tile(np.arange(5), 12),
                                  "value": values[:, :, feature].ravel()})
        reference = pingouin.intraclass_corr(frame, "case", "input", "value").set_index("Type").loc[PINGOUIN_TYPES[form]]
        interval = reference[next(name for name in reference.index if name.startswith("CI"))]
        assert result.icc[feature] == pytest.approx(reference["ICC"], abs=1e-12)
        assert result.low[feature] == pytest.approx(interval[0], abs=0.006)  # pingouin rounds to 2 decimals
        assert result.high[feature] == pytest.approx(interval[1], abs=0.006)


def test_a_constant_plus_noise_feature_gets_its_planted_icc_within_the_interval():
    reliabilities = [0.95, 0.9, 0.75, 0.5, 0.2]
    result = intraclass_correlation(planted(200, 6, reliabilities, seed=3), "1,1")
    for planted_icc, low, high in zip(reliabilities, result.low, result.high, strict=True):
        assert low <= planted_icc <= high
    assert np.all(np.diff(result.icc) < 0)  # and ranked as planted
    assert result.label == "ICC(1,1)" and result.subjects == 200 and result.raters == 6


def test_a_constant_feature_has_no_icc_and_an_unperturbed_one_has_icc_1():
    values = planted(10, 4, [0.5, 0.5, 0.5])
    values[:, :, 0] = 3.25  # constant everywhere
    values[:, :, 1] = values[:, :1, 1]  # varies between cases, no perturbation moves it
    for form in ("1,1", "2,1", "3,1"):
        result = intraclass_correlation(values, form)
        assert np.isnan(result.icc[0]) and not result.at_least(-1.0)[0]
        assert (result.icc[1], result.low[1], result.high[1]) == (1.0, 1.0, 1.0)
        assert np.isfinite(result.icc[2])


def test_the_icc_refuses_an_unknown_form_and_a_single_case():
    with pytest.raises(DENError, match="choose one of 1,1, 2,1, 3,1"):
        intraclass_correlation(planted(5, 3, [0.5]), "1,2")
    with pytest.raises(DENError, match="at least 2 cases"):
        intraclass_correlation(planted(1, 3, [0.5]))


def test_a_copy_of_the_volume_has_r_1_and_a_copy_of_the_slice_count_r_1_with_the_slices():
    random = np.random.default_rng(1)
    volume = random.uniform(1e3, 1e5, 20)
    slices = random.integers(10, 80, 20)
    features = np.stack([volume, -2 * volume + 7, slices, random.normal(size=20), np.full(20, 4.0)], axis=1)
    confound = volume_confound(features.astype(np.float32), volume, slices)
    assert confound.volume_r[0] == pytest.approx(1.0, abs=1e-6)
    assert confound.volume_r[1] == pytest.approx(-1.0, abs=1e-6)
    assert confound.slices_r[2] == pytest.approx(1.0, abs=1e-6)
    assert abs(confound.volume_r[3]) < 0.9 and np.isnan(confound.volume_r[4])
    assert confound.strong_share("volume") == pytest.approx(2 / 5)


def cube(shape=(20, 20, 20), low=5, high=15, affine=None) -> Volume:
    """A label map holding a cube of label 2 with a core of label 4."""
    data = np.zeros(shape, dtype=np.float32)
    data[low:high, low:high, low:high] = 2
    data[8:12, 8:12, 8:12] = 4
    return Volume(data, np.eye(4) if affine is None else affine, "cube.nii.gz")


def test_dilation_and_erosion_move_the_outer_contour_by_one_voxel_and_keep_the_labels_inside():
    segmentation = cube()
    dilated = perturb(segmentation, Perturbation("dilate", {"voxels": 1, "connectivity": 6}))
    eroded = perturb(segmentation, Perturbation("erode", {"voxels": 1, "connectivity": 6}))
    assert np.count_nonzero(dilated.data) == 10**3 + 6 * 10**2  # a face layer on each of the 6 faces
    assert np.count_nonzero(eroded.data) == 8**3
    assert set(np.unique(dilated.data)) == {0, 2, 4} and dilated.data.dtype == np.float32
    assert np.array_equal(eroded.data[8:12, 8:12, 8:12], segmentation.data[8:12, 8:12, 8:12])
    assert "dilate 1 voxel" in dilated.source


def test_a_translation_moves_the_tumour_along_ras_through_the_affine():
    flipped = np.diag([-1.0, -1.0, 2.0, 1.0])  # i runs to the left, j posterior, k superior in 2 mm steps
    segmentation = cube(affine=flipped)
    moved = perturb(segmentation, Perturbation("translate", {"mm": 2.0, "axis": "R"}))
    assert np.array_equal(moved.data[:-2], segmentation.data[2:])  # 2 mm to the right is 2 voxels down i
    up = perturb(segmentation, Perturbation("translate", {"mm": 2.0, "axis": "S"}))
    assert np.array_equal(up.data[:, :, 1:], segmentation.data[:, :, :-1])  # 2 mm superior is one voxel up k


def test_a_rotation_turns_the_tumour_about_its_centroid_and_keeps_its_size():
    data = np.zeros((40, 40, 40), dtype=np.uint8)
    data[10:30, 18:22, 15:25] = 1  # a bar along R
    segmentation = Volume(data, np.eye(4), "bar.nii.gz")
    turned = perturb(segmentation, Perturbation("rotate", {"degrees": 90.0, "axis": "S", "centre": "tumour centroid"}))
    rows = np.nonzero(turned.data)
    assert np.ptp(rows[0]) + 1 == 4 and np.ptp(rows[1]) + 1 == 20  # now along A
    assert np.count_nonzero(turned.data) == np.count_nonzero(data)
    small = perturb(segmentation, Perturbation("rotate", {"degrees": 3.0, "axis": "A", "centre": "tumour centroid"}))
    assert abs(np.count_nonzero(small.data) - data.sum()) < 0.05 * data.sum()


def test_contour_randomisation_is_seeded_changes_only_the_rim_and_keeps_the_size_on_average():
    segmentation = cube((40, 40, 40), 8, 32)
    draws = [perturb(segmentation, Perturbation("contour", {"cell_mm": 4.0}, seed)) for seed in (0, 0, 1)]
    assert np.array_equal(draws[0].data, draws[1].data) and not np.array_equal(draws[0].data, draws[2].data)
    inner = (slice(14, 26),) * 3
    for draw in draws:
        assert np.array_equal(draw.data[inner], segmentation.data[inner])  # deep inside: whole supervoxels kept
        assert np.count_nonzero(draw.data[:2]) == 0  # far outside: never added
    sizes = [np.count_nonzero(perturb(segmentation, Perturbation("contour", {"cell_mm": 4.0}, seed)).data)
             for seed in range(8)]
    assert abs(np.mean(sizes) / 24**3 - 1) < 0.05


def test_every_perturbation_of_the_plan_is_rebuilt_exactly_from_its_record():
    segmentation = cube((40, 40, 40), 8, 30, affine=np.diag([-1.2, 1.0, 1.5, 1.0]))
    plan = PerturbationPlan(contours=2, seed=7)
    members = plan.perturbations()
    assert [member.kind for member in members] == ["original", "dilate", "erode", *["rotate"] * 6,
                                                   *["translate"] * 6, "contour", "contour"]
    assert [member.seed for member in members[-2:]] == [7, 8]
    for member in members:
        made = perturb(segmentation, member)
        record = {**member.record(), "label_sha256": label_sha256(made.data)}
        assert np.array_equal(rebuild_perturbation(segmentation, record).data, made.data)
    other = {**members[-1].record(), "seed": 9, "label_sha256": label_sha256(perturb(segmentation, members[-1]).data)}
    with pytest.raises(DENError, match="differs from the one recorded"):
        rebuild_perturbation(segmentation, other)
    assert tumour_volume_mm3(segmentation) == pytest.approx(22**3 * 1.8)


def test_a_perturbation_that_leaves_no_tumour_and_a_bad_plan_are_refused_in_one_line():
    data = np.zeros((9, 9, 9), dtype=np.uint8)
    data[4, 4, 4] = 1
    with pytest.raises(DENError, match=r"erode 1 voxel leaves no tumour voxel"):
        perturb(Volume(data, np.eye(4), "dot.nii.gz"), Perturbation("erode", {"voxels": 1, "connectivity": 6}))
    with pytest.raises(DENError, match="choose distinct kinds among"):
        PerturbationPlan(kinds=("dilate", "shear"))
    with pytest.raises(DENError, match="contours"):
        PerturbationPlan(contours=0)


def fabricated_cohort(folder, settings: ExtractionSettings, noisy: set[str]) -> list[str]:
    """Eight cases' robustness outputs as den-robustness writes them, from planted pooled vectors: feature f of
    every case is a per-case value plus perturbation noise; in the ``noisy`` cases the noise is 100 times larger."""
    random = np.random.default_rng(4)
    plan = PerturbationPlan(kinds=("dilate", "erode"))
    reliabilities = np.linspace(0.05, 0.99, FEATURES)
    case_ids = [f"case{index}" for index in range(8)]
    for case_id in case_ids:
        subject = random.normal(size=FEATURES) * np.sqrt(reliabilities)
        noise = random.normal(size=(3, FEATURES)) * np.sqrt(1 - reliabilities) * (100 if case_id in noisy else 1)
        record = {"format": CASE_FORMAT, "case_id": case_id, "input": {"source": f"{case_id}.nii.gz", "sha256": "0"},
                  "image": None, "settings": settings.record(),
                  "model": {"id": "den-ref-v1", "weights_sha256": settings.identity.sha256}, "plan": plan.record(),
                  "perturbations": [{**member.record(), "name": member.name, "tumour_volume_mm3": 1000.0 + index,
                                     "tumour_slices": 10 + index} for index, member in enumerate(plan.perturbations())]}
        write_case(case_paths(folder, case_id), (subject + noise).astype(np.float32), record)
    write_cohort_figures(folder, pool_cases(folder, case_ids), form="1,1", parquet=False)
    return case_ids


@pytest.mark.slow
def test_the_training_filter_uses_the_training_cases_only(tmp_path):
    settings = ExtractionSettings()
    training = ["case0", "case1", "case2", "case3", "case4"]
    clean, leaky = tmp_path / "clean", tmp_path / "noisy_test_cases"
    clean.mkdir()
    leaky.mkdir()
    fabricated_cohort(clean, settings, noisy=set())
    fabricated_cohort(leaky, settings, noisy={"case5", "case6", "case7"})  # only the non-training cases differ

    chosen = robust_features(clean / "den_robustness_icc.csv", training, 0.75, settings)
    same = robust_features(leaky / "den_robustness_icc.csv", training, 0.75, settings)

    assert np.array_equal(chosen.kept, same.kept)  # the validation and test cases' perturbations play no part
    expected = intraclass_correlation(np.stack([read_case(case_paths(clean, case_id), case_id).pooled
                                                for case_id in training]), "1,1").at_least(0.75)
    assert np.array_equal(chosen.kept, expected)
    assert 0 < chosen.record["features_passed"] == expected.sum() < FEATURES
    assert chosen.record["training_cases"] == 5 and chosen.record["form"] == "ICC(1,1)"
    with pytest.raises(DENError, match="other weights or settings"):
        robust_features(clean, training, 0.75, ExtractionSettings(mode="oriented"))
    with pytest.raises(DENError, match="outputs of 1 of the 2 training cases"):
        robust_features(clean, ["case0", "elsewhere"], 0.75, settings)


def test_den_robustness_refuses_a_bad_plan_in_one_line_before_any_work(tmp_path, capsys):
    from DENExtractorLib.cli.robustness import main

    status = main([str(tmp_path / "seg.nii.gz"), "-o", str(tmp_path / "out"), "--kinds", "dilate,shear"])

    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "den-robustness: error: kinds: dilate, shear" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_case_that_cannot_be_read_fails_alone_with_one_line(tmp_path, capsys):
    from DENExtractorLib.cli.robustness import main

    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not gzip")
    status = main([str(tmp_path / "broken.nii.gz"), "-o", str(tmp_path / "out"), "--kinds", "dilate", "-q"])

    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert status == 1 and len(errors) == 1 and "broken.nii.gz" in errors[0]
    assert not (tmp_path / "out").exists()  # a folder left empty is removed


def test_a_case_record_that_is_a_fifo_or_too_large_is_refused_without_reading_it(tmp_path):
    paths = case_paths(tmp_path, "c1")
    os.mkfifo(paths["json"])
    with pytest.raises(DENError, match=r"not a regular file \(a named pipe\): expected a robustness record"):
        read_case(paths, "c1")  # returns at once: a FIFO is never opened for a blocking read
    paths["json"].unlink()
    with open(paths["json"], "wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # sparse
    with pytest.raises(DENError, match="104857600 bytes is too large for a robustness record"):
        read_case(paths, "c1")
