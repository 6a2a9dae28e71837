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


@pytest.mark.slow
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
    assert_refused(huge, "the header declares 10000000 frames, more than the 20000 DEN reads in one file",
                   tmp_path / "out", capsys)


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


def test_an_rtstruct_alone_is_refused_naming_how_to_give_its_series(tmp_path, capsys):
    rtstruct = tmp_path / "rtstruct.dcm"
    shutil.copy(get_testdata_file("rtstruct.dcm"), rtstruct)
    assert_refused(rtstruct, "an RTSTRUCT holds contours drawn on the images of a series: give that series (--grid "
                             "FOLDER in label mode, or --image FOLDER in image mode; a 'grid' or 'image' column in a "
                             "cases CSV)", tmp_path / "out", capsys)


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


def test_a_folder_of_two_series_is_refused_listing_each(brats_dicom, tmp_path, capsys):
    series = copy_series(brats_dicom, tmp_path / "series")
    other = pydicom.dcmread(series / "MR0001.dcm")
    other.SeriesInstanceUID, other.SeriesDescription = "1.2.3.4.5", "T1 post-contrast"
    other.save_as(series / "other.dcm")
    uid = str(pydicom.dcmread(series / "MR0002.dcm", stop_before_pixels=True).SeriesInstanceUID)
    status, lines = run_cli([brats_dicom["seg"], "--image", series, "-o", tmp_path / "out"], capsys)
    assert status == 1
    assert lines == [f"den-extract: error: {series}: the folder holds 2 image series, 1.2.3.4.5 ('T1 post-contrast', 1 "
                     f"files); {uid} ('no description', 155 files): choose one with --series UID (a 'series' column in a "
                     "cases CSV)"]


@pytest.mark.slow
def test_a_seg_stored_beside_its_series_is_left_out_of_the_images(brats_dicom, tmp_path):
    from DENExtractorLib import load_case
    from DENExtractorLib.readers import source_sha256

    series = copy_series(brats_dicom, tmp_path / "series")
    shutil.copy(brats_dicom["seg"], series / "seg.dcm")
    segmentation, image = load_case(series / "seg.dcm", series)
    alone, image_alone = load_case(brats_dicom["seg"], brats_dicom["series"])
    assert np.array_equal(image.data, image_alone.data) and np.array_equal(segmentation.data, alone.data)
    assert image.sha256 == source_sha256(series)  # every file of the folder, as resume checks it


def deflate_bomb(path, inflated_bytes: int):
    """A small file in the Deflated transfer syntax whose dataset (a SEG header and a pixel-data element of zeros)
    inflates to ``inflated_bytes``."""
    import struct
    import zlib

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.3"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    header = Dataset()
    header.SOPClassUID, header.SOPInstanceUID, header.SegmentationType = meta.MediaStorageSOPClassUID, "1.2.3", "BINARY"
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, header)
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(16 << 20)
    with open(path, "wb") as handle:
        handle.write(bytes(128) + b"DICM")
        write_file_meta_info(handle, meta, enforce_standard=True)
        handle.write(compressor.compress(encoded.getvalue() + b"\xe0\x7f\x10\x00OB\x00\x00"
                                         + struct.pack("<I", inflated_bytes)))
        for _ in range(inflated_bytes // len(zeros)):
            handle.write(compressor.compress(zeros))
        handle.write(compressor.flush())
    return path


LAUNCHER = ("import os, subprocess, sys\n"
            "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(child.pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")
"""Runs a command and prints its exit status and its own peak resident memory (KiB). A small process of its own
starts it: Linux carries the forking process's peak into a child's ru_maxrss across exec, and the test session's
own peak (TensorFlow, models) would be counted."""


def peak_of_refusal(arguments, tmp_path, environment=None):
    """den-extract run as a user runs it: (exit status, stderr lines, its own peak resident memory in bytes)."""
    import subprocess
    import sys
    from pathlib import Path

    command = [str(Path(sys.executable).parent / "den-extract"), *map(str, arguments), "-o", str(tmp_path / "out")]
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as handle:
        launched = subprocess.run([sys.executable, "-c", LAUNCHER, *command], stdout=subprocess.PIPE, stderr=handle,
                                  env={**os.environ, **(environment or {})}, text=True, check=True)
    status, peak_kib = (int(value) for value in launched.stdout.split())
    return status, errors.read_text().strip().splitlines(), peak_kib * 1024


@pytest.mark.slow
def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it(tmp_path):
    bomb = deflate_bomb(tmp_path / "bomb.dcm", 256 << 20)
    assert bomb.stat().st_size < 2 << 20
    status, lines, peak = peak_of_refusal([bomb], tmp_path, {"DEN_MAX_INPUT_GB": "0.05"})
    assert status == 1 and lines == [f"den-extract: error: {bomb}: its Deflated dataset inflates to more than 0.11 GiB, "
                                     "above the input limit (set DEN_MAX_INPUT_GB to raise it)"]
    assert peak < 1.5 * 2**30


@pytest.mark.slow
def test_a_huge_pixel_data_element_on_a_small_image_is_refused_unread(tmp_path):
    image = pydicom.dcmread(get_testdata_file("MR_small.dcm"))  # 64 x 64, 16 bits: 8 KiB of pixels
    series = tmp_path / "series"
    series.mkdir()
    image.save_as(series / "MR.dcm")
    os.truncate(series / "MR.dcm", 2**30)  # a sparse 1 GiB file: its pixel data padded far past what is declared
    status, lines, peak = peak_of_refusal([PAT0001_LABELS, "--image", series], tmp_path)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"den-extract: error: {series / 'MR.dcm'}: the file holds 1024.0 MiB where its header "
                               "declares 1 frames of 64 x 64 (0.0 MiB of pixel data): padded or malformed")
    assert peak < 1.5 * 2**30


def with_frame_descriptions(seg_path, path, count: int, frames: int | None = None):
    """A copy of a SEG whose Per-frame Functional Groups Sequence holds ``count`` small descriptions of undefined
    length (the form pydicom parses item by item while reading the header), declaring ``frames`` frames."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    seg = pydicom.dcmread(seg_path)
    item = Dataset()
    item.PlanePositionSequence = seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    holder = Dataset()
    holder.PerFrameFunctionalGroupsSequence = [item]
    for element in (holder["PerFrameFunctionalGroupsSequence"], item["PlanePositionSequence"]):
        element.is_undefined_length = True
        for nested in element.value:
            nested.is_undefined_length_sequence_item = True
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, holder)
    raw = encoded.getvalue()  # tag, VR and length (12 bytes) | one item | sequence delimiter (8 bytes)
    del seg.PerFrameFunctionalGroupsSequence
    if frames is not None:
        seg.NumberOfFrames = frames
    seg.save_as(path)
    data = path.read_bytes()
    pixel_data = data.rindex(b"\xe0\x7f\x10\x00")
    path.write_bytes(data[:pixel_data] + raw[:12] + raw[12:-8] * count + raw[-8:] + data[pixel_data:])
    return path


@pytest.mark.slow
def test_a_seg_with_300000_frame_descriptions_is_refused_before_they_are_parsed(brats_dicom, tmp_path):
    hostile = with_frame_descriptions(brats_dicom["seg"], tmp_path / "descriptions.dcm", 300_000)
    frames = int(pydicom.dcmread(brats_dicom["seg"], stop_before_pixels=True).NumberOfFrames)
    status, lines, peak = peak_of_refusal([hostile, "--grid", brats_dicom["series"]], tmp_path)
    assert status == 1 and len(lines) == 1, lines  # one line: no traceback, no pydicom or highdicom warning
    assert lines[0].startswith(f"den-extract: error: {hostile}: its per-frame descriptions and pixel data take ")
    assert f"where its header declares {frames} frames" in lines[0]
    assert peak < 1.5 * 2**30
    declared = with_frame_descriptions(brats_dicom["seg"], tmp_path / "declared.dcm", 1000, frames=300_000)
    status, lines, _ = peak_of_refusal([declared], tmp_path)
    assert status == 1 and lines == [f"den-extract: error: {declared}: the header declares 300000 frames, more than "
                                     "the 20000 DEN reads in one file"]


@pytest.mark.slow
def test_sigterm_stops_den_extract_while_it_parses_a_hostile_header(brats_dicom, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    slow = with_frame_descriptions(brats_dicom["seg"], tmp_path / "slow.dcm", 20_000, frames=20_000)  # minutes
    command = [str(Path(sys.executable).parent / "den-extract"), str(slow), "-o", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    descriptors = Path(f"/proc/{process.pid}/fd")
    while process.poll() is None and not any(_links_to(entry, slow) for entry in _entries(descriptors)):
        time.sleep(0.01)  # until the child has the hostile file open (reading it)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=600)
    assert process.returncode == 130, errors
    assert errors.strip().splitlines() == ["den-extract: interrupted; finished cases are kept"]


def _entries(folder):
    """A folder's entries, or none once it is gone."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _links_to(link, target) -> bool:
    """Whether a /proc file-descriptor link points at ``target`` (False once it is closed)."""
    try:
        return os.readlink(link) == str(target)
    except OSError:
        return False
