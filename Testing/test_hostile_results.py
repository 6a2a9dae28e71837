"""Nothing silent: the faults of issue 15 that gave a wrong result without a word, each answered with the right
result or one plain line (real files, real races between threads, the real command line)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import threading

import nibabel
import numpy as np
import pytest
import slicerio
from DENExtractorLib import DENError, load_segmentation
from DENExtractorLib.cli.train import main as train_main
from DENExtractorLib.demo import write_synthetic_case
from helpers import DATA, PAT0001, PAT0001_FLAIR, PAT0001_LABELS, SLICER_SEGMENTATION, run_cli

pytestmark = pytest.mark.needs_data

CAPTK_FLAIR = DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk.nii.gz"
CAPTK_MASK = DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz"
PAT0002_LABELS = DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz"


def scaled_copy(source, path, slope: float, inter: float = 0.0):
    """The real label map ``source`` rewritten with the given scl_slope / scl_inter (stored values unchanged)."""
    image = nibabel.load(str(source))
    stored = np.asanyarray(image.dataobj).astype(np.uint8)
    copy = nibabel.Nifti1Image(stored, image.affine)
    copy.header.set_slope_inter(slope, inter)
    nibabel.save(copy, str(path))
    return path


def test_a_gzipped_nifti_applies_the_header_scaling_like_the_uncompressed_one_and_nibabel(tmp_path):
    for suffix in (".nii", ".nii.gz"):
        path = scaled_copy(PAT0001_LABELS, tmp_path / f"slope2{suffix}", 2.0)
        volume = load_segmentation(path)
        assert np.array_equal(volume.data, nibabel.load(str(path)).get_fdata())
        assert sorted(np.unique(volume.data).tolist()) == [0, 2, 4, 6, 8]
    plain, gzipped = (load_segmentation(tmp_path / f"slope2{suffix}") for suffix in (".nii", ".nii.gz"))
    assert plain.data.dtype == gzipped.data.dtype and np.array_equal(plain.data, gzipped.data)


@pytest.mark.parametrize("slope, inter, fault", [(-1.0, 0.0, "negative label value"),
                                                 (0.5, 0.0, "non-integer label values"),
                                                 (1e38, 0.0, r"label value 4e\+38 is above 2147483647")])
def test_a_gzipped_nifti_refuses_the_scaling_the_uncompressed_one_refuses(tmp_path, slope, inter, fault):
    for suffix in (".nii", ".nii.gz"):
        path = scaled_copy(PAT0001_LABELS, tmp_path / f"scaled{suffix}", slope, inter)
        with pytest.raises(DENError, match=fault):
            load_segmentation(path)


def test_256_segments_sharing_one_label_in_one_layer_are_an_overlap_not_a_wrapped_counter(tmp_path):
    segmentation = slicerio.read_segmentation(str(SLICER_SEGMENTATION))
    voxels = (segmentation["voxels"] == 1).astype(np.uint8)
    template = segmentation["segments"][0]
    segmentation["voxels"] = voxels
    segmentation["segments"] = [dict(template, id=f"S{index}", name=f"segment {index}", labelValue=1, layer=0)
                                for index in range(256)]
    path = tmp_path / "many.seg.nrrd"
    slicerio.write_segmentation(str(path), segmentation)
    with pytest.raises(DENError, match=r"voxels belong to two segments at once; DEN needs one label"):
        load_segmentation(path)


@pytest.mark.slow
def test_the_recorded_sha256_is_of_the_bytes_read_even_while_the_file_is_replaced(tmp_path):
    first, second = tmp_path / "first.nii.gz", tmp_path / "second.nii.gz"
    shutil.copy(PAT0001_LABELS, first)
    shutil.copy(PAT0002_LABELS, second)
    digests = {hashlib.sha256(path.read_bytes()).hexdigest(): load_segmentation(path).data for path in (first, second)}
    target = tmp_path / "case.nii.gz"
    shutil.copy(first, target)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for source in (second, first):
                shutil.copy(source, tmp_path / "incoming.nii.gz")
                os.replace(tmp_path / "incoming.nii.gz", target)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        volumes = [load_segmentation(target) for _ in range(30)]
    finally:
        stop.set()
        swapper.join()
    for volume in volumes:
        assert np.array_equal(volume.data, digests[volume.sha256])


def test_a_detached_data_file_swapped_for_a_link_is_never_read_from_outside(tmp_path):
    folder, outside = tmp_path / "case", tmp_path / "secret"
    folder.mkdir()
    outside.mkdir()
    inside_voxels = np.zeros((8, 8, 4), dtype=np.uint8)
    inside_voxels[2:6, 2:6, 1:3] = 1
    (folder / "real.raw").write_bytes(inside_voxels.tobytes(order="F"))
    (outside / "secret.raw").write_bytes((inside_voxels * 7).tobytes(order="F"))
    (folder / "case.nhdr").write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 8 8 4\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\ndata file: data.raw\n")
    link = folder / "data.raw"
    shutil.copy(folder / "real.raw", link)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            (folder / "next").symlink_to(outside / "secret.raw")
            os.replace(folder / "next", link)
            shutil.copy(folder / "real.raw", folder / "next")
            os.replace(folder / "next", link)

    swapper = threading.Thread(target=swap)
    swapper.start()
    read, refused = [], 0
    try:
        for _ in range(60):
            try:
                read.append(load_segmentation(folder / "case.nhdr").data)
            except DENError as error:
                assert "symbolic link" in str(error) or "does not exist" in str(error)
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert all(int(data.max()) == 1 for data in read)  # never the outside file's 7s
    assert read or refused


def two_inputs_with_one_name(tmp_path):
    """Two different real-looking label maps, both named ``case.nii.gz`` in their own folders."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = write_synthetic_case(tmp_path / "a" / "case.nii.gz", shape=(48, 48, 24), seed=1)
    second = write_synthetic_case(tmp_path / "b" / "case.nii.gz", shape=(48, 48, 24), seed=2)
    return first, second


@pytest.mark.slow
def test_a_second_run_never_silently_replaces_another_inputs_or_other_settings_results(tmp_path, capsys):
    first, second = two_inputs_with_one_name(tmp_path)
    out = tmp_path / "out"
    assert run_cli([first, "-o", out, "--no-png"], capsys)[0] == 0
    kept = (out / "case_den.npy").read_bytes()
    for arguments in ([first, "--mode", "oriented"], [first, "--mode", "oriented", "--resume"]):
        status, lines = run_cli([*arguments, "-o", out, "--no-png"], capsys)
        assert status == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"den-extract: error: {out / 'case_den.json'}: holds results of other settings")
        assert "--overwrite" in lines[0] and "another output folder" in lines[0] and "--resume" in lines[0]
        assert (out / "case_den.npy").read_bytes() == kept
    assert run_cli([first, "-o", out, "--no-png"], capsys)[0] == 0  # the same input and settings: a rerun
    assert run_cli([second, "-o", out, "--no-png"], capsys)[0] == 0  # another patient's case.nii.gz: named b
    assert (out / "case_den.npy").read_bytes() == kept
    assert json.loads((out / "b_den.json").read_text())["input"]["source"] == str(second)
    assert run_cli([first, "-o", out, "--no-png", "--mode", "oriented", "--overwrite"], capsys)[0] == 0
    assert json.loads((out / "case_den.json").read_text())["settings"]["mode"] == "oriented"


@pytest.mark.slow
def test_a_generic_file_name_is_named_by_its_folder_also_alone(tmp_path, capsys):
    folder = tmp_path / "pat0003"
    folder.mkdir()
    write_synthetic_case(folder / "OTMultiClass.nii.gz", shape=(48, 48, 24), seed=4)
    assert run_cli([folder / "OTMultiClass.nii.gz", "-o", tmp_path / "out", "--no-png"], capsys)[0] == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["pat0003_den.json", "pat0003_den.npy"]


def quantised_mri(tmp_path, levels: int):
    """The real BraTS FLAIR as an integer MRI with at most ``levels + 1`` values (as scanners store a T2-FLAIR)."""
    image = nibabel.load(str(PAT0001_FLAIR))
    flair = image.get_fdata()
    brain = flair != 0
    quantised = np.zeros(flair.shape, dtype=np.int16)
    low, high = flair[brain].min(), flair[brain].max()
    quantised[brain] = np.round((flair[brain] - low) / (high - low) * levels).astype(np.int16) + 1
    path = tmp_path / f"t2f_{levels}.nii.gz"
    nibabel.save(nibabel.Nifti1Image(quantised, image.affine), str(path))
    return path


@pytest.mark.parametrize("levels", [40, 255, 900])
@pytest.mark.slow
def test_an_integer_mri_is_not_a_label_map_in_any_mode(tmp_path, capsys, levels):
    mri = quantised_mri(tmp_path, levels)
    for extra in ([], ["--mode", "oriented"], ["--mode", "oriented", "--plane", "coronal"], ["--labels", "2,3"]):
        status, lines = run_cli([mri, "-o", tmp_path / "out", *extra], capsys)
        assert status == 1 and len(lines) == 1, lines  # the case failed
        assert f"{mri}: not a label map:" in lines[0] and "pass an MRI as --image" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mri", [PAT0001_FLAIR, PAT0001 / "T1c_subtrMeanDivStd.nii.gz", CAPTK_FLAIR])
def test_the_real_mris_are_refused_as_segmentations_and_the_real_label_maps_pass(mri):
    with pytest.raises(DENError, match="pass an MRI as --image"):
        load_segmentation(mri)
    for label_map in (PAT0001_LABELS, PAT0002_LABELS, CAPTK_MASK, SLICER_SEGMENTATION):
        assert load_segmentation(label_map).data.any()


@pytest.mark.slow
def test_den_train_refuses_an_mri_as_segmentation_with_the_same_rule(tmp_path, capsys):
    mri = quantised_mri(tmp_path, 255)
    table = tmp_path / "cases.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "segmentation", "grade"])
        for index in range(4):
            writer.writerow([f"p{index}", mri, index % 2])
    status = train_main(["--cases", str(table), "--label-column", "grade", "-o", str(tmp_path / "model"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{mri}: not a label map:" in err and "pass an MRI as --image" in err


def one_part_run(tmp_path, capsys):
    """A real one-part array job over two synthetic cases; returns its output folder."""
    table = tmp_path / "cases.csv"
    cases = [write_synthetic_case(tmp_path / f"c{index}.nii.gz", shape=(48, 48, 24), seed=index) for index in (1, 2)]
    table.write_text("case_id,segmentation\n" + "".join(f"c{index},{path}\n" for index, path in enumerate(cases)))
    out = tmp_path / "out"
    assert run_cli(["--cases", table, "-o", out, "--no-png", "--num-parts", "1", "--part-id", "0"], capsys)[0] == 0
    return out


def table_rows(out) -> dict:
    """The rows of ``out/den_cohort.csv`` by case id."""
    with open(out / "den_cohort.csv", newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_merge_validates_the_manifest_and_trusts_no_hand_edited_record(tmp_path, capsys):
    out = one_part_run(tmp_path, capsys)
    manifest_path = out / "den_cohort_manifest.json"
    good = manifest_path.read_text()
    assert run_cli(["--merge", out], capsys)[0] == 0
    rows = table_rows(out)

    record_path = out / "c0_den.json"
    record = json.loads(record_path.read_text())
    record["features"]["foreground_rows"] = record["features"]["foreground_rows"][:1]
    record_path.write_text(json.dumps(record))
    status, lines = run_cli(["--merge", out], capsys)
    assert status == 1 and any(line.startswith("den-extract: missing: c0:") for line in lines), lines
    merged = table_rows(out)
    assert merged["c0"]["status"] == "failed" and merged["c1"] == rows["c1"]

    manifest = json.loads(good)
    for field, value, fault in [("case_id", "../victim/x", "contains a path separator"),
                                ("num_parts", 1_000_000_000, "num_parts 1000000000 is not a whole number"),
                                ("num_parts", 0, "num_parts 0 is not"),
                                ("num_parts", 1e300, "num_parts 1e+300 is not")]:
        changed = json.loads(good)
        if field == "case_id":
            changed["cases"][0]["case_id"] = value
        else:
            changed[field] = value
        manifest_path.write_text(json.dumps(changed))
        status, lines = run_cli(["--merge", out], capsys)
        assert status == 2 and len(lines) == 1 and lines[0].startswith(f"den-extract: error: {manifest_path}: "), lines
        assert fault in lines[0], lines[0]
    manifest_path.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    status, lines = run_cli(["--merge", out], capsys)
    assert status == 2 and lines == [f"den-extract: error: {manifest_path}: unreadable (JSON nested too deeply)"]
    assert manifest["num_parts"] == 1

