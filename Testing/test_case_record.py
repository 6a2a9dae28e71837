"""The case record (``_den.json``): one read, one write, one settings comparison, shared by ``--resume``, the
overwrite guard and the heatmap; output names that never meet another patient's results (issues 25 and 27)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib.errors import DENError
from DENExtractorLib.outputs.files import check_not_overwriting, heatmap_title, output_paths
from DENExtractorLib.outputs.record import case_record, read_record, record_sha256
from DENExtractorLib.settings import ExtractionSettings
from helpers import run_cli

ORIENTED = ("--mode", "oriented", "--no-png")


@pytest.fixture(scope="module")
def oriented_run(small_case, tmp_path_factory) -> Path:
    """The output folder of one oriented-mode run of the small case (default label scale 4)."""
    from DENExtractorLib.cli.extract import main

    out = tmp_path_factory.mktemp("record") / "out"
    assert main([str(small_case), "-o", str(out), *ORIENTED, "--quiet"]) == 0
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    """A copy of an output folder a test may change."""
    return Path(shutil.copytree(folder, tmp_path / "out"))


@pytest.mark.slow
def test_changing_label_max_is_refused_as_changing_the_plane_is(oriented_run, small_case, tmp_path, capsys):
    out = _copy(oriented_run, tmp_path)
    before = (out / "small_case_den.npy").read_bytes()
    status, lines = run_cli([small_case, "-o", out, *ORIENTED, "--label-max", "8"], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert "other settings (mode oriented, plane axial, labels all, label max 4" in lines[0]
    assert "this run: mode oriented, plane axial, labels all, label max 8" in lines[0]
    assert "rerun with --overwrite" in lines[0]  # the same case's results: replacing them is the user's choice
    assert (out / "small_case_den.npy").read_bytes() == before


@pytest.mark.slow
def test_resume_recomputes_what_the_guard_calls_other_settings(oriented_run, small_case, tmp_path, capsys):
    out = _copy(oriented_run, tmp_path)
    status, _ = run_cli([small_case, "-o", out, *ORIENTED, "--resume"], capsys)
    assert status == 0 and read_record(out / "small_case_den.json").settings.label_max == 4.0
    record = read_record(out / "small_case_den.json")
    assert record.settings == ExtractionSettings(mode="oriented").effective
    assert record.settings != ExtractionSettings(mode="oriented", label_max=8).effective


@pytest.mark.slow
def test_a_record_keeps_each_setting_once_and_says_where_each_came_from(oriented_run):
    provenance = json.loads((oriented_run / "small_case_den.json").read_text())
    assert provenance["format"] == "den-provenance/2"
    assert provenance["settings"]["label_max"] == 4.0 and provenance["settings"]["plane"] == "axial"
    assert provenance["settings"]["from"]["label_max"] == "default"
    assert provenance["settings"]["from"]["mode"] == "command line"
    assert not {"mode", "plane", "labels", "label_max"} & set(provenance["preprocessing"])
    assert provenance["preprocessing"]["divisor"] == 4.0


@pytest.mark.slow
def test_a_record_of_the_earlier_layout_is_read_and_resumed(oriented_run, small_case, tmp_path, capsys):
    out = _copy(oriented_run, tmp_path)
    path = out / "small_case_den.json"
    provenance = json.loads(path.read_text())
    settings = provenance.pop("settings")
    provenance["format"] = "den-provenance/1"  # before issue 16: the settings only in preprocessing
    provenance["preprocessing"].update({name: settings[name] for name in ("mode", "plane", "labels", "label_max")})
    provenance["record_sha256"] = record_sha256(provenance)
    path.write_text(json.dumps(provenance))
    assert read_record(path).settings == ExtractionSettings(mode="oriented").effective
    status, _ = run_cli([small_case, "-o", out, *ORIENTED, "--resume", "--label-max", "4"], capsys)
    assert status == 0 and json.loads(path.read_text())["format"] == "den-provenance/1"  # reused, not rewritten


@pytest.mark.slow
def test_a_second_patient_with_the_same_file_name_takes_its_folder_name(oriented_run, small_case, tmp_path, capsys):
    first, second = tmp_path / "TCGA-02-0003", tmp_path / "TCGA-06-0122"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(small_case, folder / "fusion_mav_MODELPRED.nii.gz")
    out = tmp_path / "out"
    assert run_cli([first / "fusion_mav_MODELPRED.nii.gz", "-o", out, *ORIENTED], capsys)[0] == 0
    kept = (out / "fusion_mav_MODELPRED_den.json").read_bytes()
    status, lines = run_cli([second / "fusion_mav_MODELPRED.nii.gz", "-o", out, *ORIENTED], capsys)
    assert status == 0, lines
    assert (out / "fusion_mav_MODELPRED_den.json").read_bytes() == kept  # the first patient's results
    assert read_record(out / "TCGA-06-0122_den.json").segmentation[0] == str(second / "fusion_mav_MODELPRED.nii.gz")
    status, lines = run_cli([second / "fusion_mav_MODELPRED.nii.gz", "-o", out, *ORIENTED, "--resume"], capsys)
    assert status == 0 and (out / "TCGA-06-0122_den.npy").is_file()  # the same name on every rerun


@pytest.mark.slow
def test_the_refusal_never_offers_to_destroy_another_cases_results(oriented_run, tmp_path):
    paths = output_paths(oriented_run, "small_case")
    other = tmp_path / "other" / "small_case.nii.gz"
    with pytest.raises(DENError) as refused:
        check_not_overwriting(paths, other, None, ExtractionSettings(mode="oriented"))
    assert "another segmentation" in str(refused.value) and "rerun with --overwrite" not in str(refused.value)
    assert "--overwrite would destroy that case's results" in str(refused.value)


def test_the_heatmap_title_names_the_patient_when_the_file_name_does_not():
    record = case_record({
        "model": {"id": "den-ref-v1", "weights_sha256": "0"}, "image": None,
        "input": {"source": "/data/TCGA-02-0003/fusion_mav_MODELPRED.nii.gz", "sha256": "0"},
        "features": {"shape": [155, 4096], "foreground_rows": [60]},
        "settings": {"mode": "oriented", "plane": "axial", "labels": "all", "label_max": 4.0}, "preprocessing": {}})
    assert heatmap_title("fusion_mav_MODELPRED", record).startswith(
        "DEN features of TCGA-02-0003/fusion_mav_MODELPRED (den-ref-v1; oriented mode, axial plane")
    assert heatmap_title("pat7", record).startswith("DEN features of pat7 (")  # a case id names the patient already


def test_records_missing_a_fact_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "x_den.json"
    path.write_text(json.dumps({"settings": {"mode": "oriented"}, "model": {"id": "m", "weights_sha256": "0"}}))
    with pytest.raises(DENError, match=r"x_den\.json: not a complete DEN record"):
        read_record(path)


def test_a_record_nested_too_deeply_to_parse_is_one_line_naming_it(tmp_path):
    path = tmp_path / "x_den.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DENError, match=r"x_den\.json: unreadable \(JSON nested too deeply\)"):
        read_record(path)


def test_settings_made_from_others_carry_the_right_weights_identity():
    settings = ExtractionSettings(mode="oriented")
    identity = settings.identity  # worked out once, then carried to the settings made from these
    kept = settings.with_labels([1])
    assert kept.identity is identity and kept.effective.labels == (1,)
    assert settings.effective == ExtractionSettings(mode="oriented", label_max=4).effective
    assert settings.effective != ExtractionSettings(mode="oriented", label_max="case").effective
    oldest = case_record({  # before the fixed label scale: no label_max, the case's own largest label
        "model": {"id": "m", "weights_sha256": "0"}, "input": {"source": "s", "sha256": "0"},
        "features": {"shape": [2, 4096], "foreground_rows": [1]},
        "preprocessing": {"mode": "oriented", "plane": "axial", "labels": [1, 4]}})
    assert oldest.settings.label_max == "case" and oldest.settings.labels == (1, 4)
    assert np.array_equal(oldest.foreground_rows, [1]) and not oldest.intact
