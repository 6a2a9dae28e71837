"""DICOM in: an MR image series folder and a DICOM SEG written from the real BraTS case pat0001 (pydicom,
highdicom) give the features of the NIfTI case, max difference 0; hostile DICOM is refused in one line."""

from __future__ import annotations

import json
import os
import shutil

import nibabel
import numpy as np
import pytest
from helpers import PAT0001_FLAIR, PAT0001_LABELS, assert_refused, run_cli

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from dicom_fixtures import BRATS_LABELS, write_mr_series, write_seg  # noqa: E402  (needs pydicom, highdicom)
from pydicom.data import get_testdata_file  # noqa: E402

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def brats_dicom(tmp_path_factory):
    """pat0001 as DICOM: the FLAIR as an MR series folder, the label map as a SEG omitting empty frames (as
    highdicom and most tools write it) and as one with every frame; and the NIfTI of the series' own values."""
    folder = tmp_path_factory.mktemp("dicom")
    series, values = write_mr_series(PAT0001_FLAIR, folder / "series")
    sparse = write_seg(PAT0001_LABELS, series, folder / "seg.dcm")
    full = write_seg(PAT0001_LABELS, series, folder / "seg_all_frames.dcm", omit_empty_frames=False)
    flair = folder / "flair_as_stored.nii.gz"
    nibabel.save(nibabel.Nifti1Image(values, nibabel.load(PAT0001_FLAIR).affine), flair)
    return {"series": folder / "series", "seg": sparse, "seg_all_frames": full, "flair": flair, "folder": folder}


@pytest.mark.slow
def test_a_dicom_seg_gives_the_features_of_the_nifti_label_map(reference_extractor, reference_result, brats_dicom):
    result = reference_extractor.extract_file(brats_dicom["seg_all_frames"])
    assert float(np.max(np.abs(result.features - reference_result.features))) == 0.0
    assert result.features.tobytes() == reference_result.features.tobytes()
    assert result.provenance["input"]["segments"] == [{"number": number, "label": label}
                                                      for number, label in BRATS_LABELS.items()]


@pytest.mark.slow
def test_image_mode_seg_and_series_in_a_cases_csv_equal_the_nifti_case(brats_dicom, capsys):
    folder = brats_dicom["folder"]
    cases = folder / "cases.csv"
    cases.write_text("ID,Image,Mask\n"
                     f"dicom,series,seg.dcm\n"
                     f"nifti,{brats_dicom['flair']},{PAT0001_LABELS}\n", encoding="utf-8")
    status, lines = run_cli(["--cases", cases, "-o", folder / "out", "--no-png"], capsys)
    assert status == 0, lines
    dicom, nifti = (np.load(folder / "out" / f"{name}_den.npy") for name in ("dicom", "nifti"))
    assert float(np.max(np.abs(dicom - nifti))) == 0.0 and dicom.tobytes() == nifti.tobytes()
    provenance = json.loads((folder / "out" / "dicom_den.json").read_text())
    assert provenance["input"]["segments"][3] == {"number": 4, "label": "enhancing tumour"}
    assert provenance["image"]["source"] == str(brats_dicom["series"])
    assert provenance["input"]["shape"] == [240, 240, 155]  # the series' grid, though the SEG omits empty frames

    status, lines = run_cli(["--cases", cases, "-o", folder / "out", "--no-png", "--resume"], capsys)
    assert status == 0 and all("resumed" in line for line in lines if line.startswith("dicom")), lines


def copy_series(brats_dicom, target):
    """A copy of the MR series folder to damage."""
    return shutil.copytree(brats_dicom["series"], target)


def test_a_truncated_seg_is_refused_in_one_line(brats_dicom, tmp_path, capsys):
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(brats_dicom["seg"].read_bytes()[: brats_dicom["seg"].stat().st_size * 2 // 3])
    frames = int(pydicom.dcmread(brats_dicom["seg"], stop_before_pixels=True).NumberOfFrames)
    assert frames > 100  # frames of the 4 segments, empty ones omitted
    assert_refused(truncated, f"truncated: the header declares {frames} frames", tmp_path / "out", capsys)


def test_huge_declared_frames_are_refused_before_reading(brats_dicom, tmp_path, capsys):
    seg = pydicom.dcmread(brats_dicom["seg"])
    seg.NumberOfFrames = 10**7
    huge = tmp_path / "huge.dcm"
    seg.save_as(huge)
    assert_refused(huge, "10000000 frames of 240 x 240: the header declares", tmp_path / "out", capsys)


def test_missing_frames_are_refused(brats_dicom, tmp_path, capsys):
    seg = pydicom.dcmread(brats_dicom["seg"])
    frames = int(seg.NumberOfFrames)
    del seg.PerFrameFunctionalGroupsSequence[10]
    missing = tmp_path / "missing.dcm"
    seg.save_as(missing)
    assert_refused(missing, f"the header declares {frames} frames but describes {frames - 1}: frames are missing",
                   tmp_path / "out", capsys)


def test_a_series_with_a_missing_plane_is_refused(brats_dicom, tmp_path, capsys):
    series = copy_series(brats_dicom, tmp_path / "series")
    (series / "MR0080.dcm").unlink()
    status, lines = run_cli([brats_dicom["seg"], "--image", series, "-o", tmp_path / "out"], capsys)
    assert status == 1
    assert lines == [f"den-extract: error: {series}: a plane is missing: 2 mm between planes 79 and 80 where the "
                     "others are 1 mm apart (missing or unreadable file?)"]


def test_a_seg_referencing_another_series_is_refused(brats_dicom, tmp_path, capsys):
    seg = pydicom.dcmread(brats_dicom["seg"])
    seg.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.4"
    other = tmp_path / "other.dcm"
    seg.save_as(other)
    status, lines = run_cli([other, "--image", brats_dicom["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1
    assert lines[0].startswith(f"den-extract: error: {other}: the SEG references 1.2.3.4, not the image series given")


def test_a_link_out_of_the_series_folder_is_refused(brats_dicom, tmp_path, capsys):
    series = copy_series(brats_dicom, tmp_path / "series")
    (series / "MR0001.dcm").unlink()
    (series / "MR0001.dcm").symlink_to(brats_dicom["series"] / "MR0001.dcm")
    status, lines = run_cli([brats_dicom["seg"], "--image", series, "-o", tmp_path / "out"], capsys)
    assert status == 1
    assert lines == [f"den-extract: error: {series / 'MR0001.dcm'}: a link leading out of the series folder: DEN "
                     "reads only the files in it"]


def test_rtstruct_is_refused_naming_what_to_convert_with(tmp_path, capsys):
    rtstruct = tmp_path / "rtstruct.dcm"
    shutil.copy(get_testdata_file("rtstruct.dcm"), rtstruct)
    assert_refused(rtstruct, "an RTSTRUCT holds contours, not voxels, and DEN does not rasterise them itself; "
                             "convert it to a label map first (for example with 3D Slicer's SlicerRT or rt-utils)",
                   tmp_path / "out", capsys)


def test_pydicoms_own_truncated_and_image_files(tmp_path, capsys):
    series = tmp_path / "truncated_series"
    series.mkdir()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), series / "MR_truncated.dcm")
    status, lines = run_cli([PAT0001_LABELS, "--image", series, "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1
    assert lines[0].startswith(f"den-extract: error: {series / 'MR_truncated.dcm'}: the pixel data cannot be read")
    image = tmp_path / "MR_small.dcm"
    shutil.copy(get_testdata_file("MR_small.dcm"), image)
    assert_refused(image, "not a DICOM SEG (SOP class 1.2.840.10008.5.1.4.1.1.4)", tmp_path / "out", capsys)


def test_pydicoms_own_encodings_of_one_mr_slice_read_alike(tmp_path):
    from DENExtractorLib import load_image

    volumes = {}
    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                 "MR_small_expb.dcm"):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(get_testdata_file(name), folder / name)
        volumes[name] = load_image(folder)
    reference = volumes["MR_small.dcm"]
    header = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert reference.shape == (64, 64, 1)
    np.testing.assert_array_equal(reference.data[:, :, 0], header.pixel_array.T)  # i along a row, j down a column
    np.testing.assert_allclose(reference.affine[:3, 3], [83.9063, 91.2, 6.6406])  # LPS position as RAS
    for name, volume in volumes.items():
        assert np.array_equal(volume.data, reference.data) and np.allclose(volume.affine, reference.affine), name


def test_a_dicom_file_larger_than_the_input_bound_is_refused_unread(brats_dicom, tmp_path, capsys, monkeypatch):
    padded = tmp_path / "padded.dcm"
    shutil.copy(brats_dicom["seg"], padded)
    os.truncate(padded, 80 * 2**20)  # a sparse 80 MiB file: pixel data and header are no larger than before
    monkeypatch.setenv("DEN_MAX_INPUT_GB", "0.001")
    assert_refused(padded, "the file holds 0.08 GiB, above the 0.00 GiB input limit (set DEN_MAX_INPUT_GB to raise "
                           "it)", tmp_path / "out", capsys)
