"""Files from scanners, PACS exports and strangers: every hostile header or payload gets one plain line, bounded
memory, and no output; no path in a file reaches outside its own folder."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import h5py
import nibabel
import numpy as np
import pytest
from DENExtractorLib import DENError, load_segmentation
from DENExtractorLib.readers.limits import MAX_INPUT_ENVIRONMENT_VARIABLE
from helpers import (
    DATA,
    PAT0001_FLAIR,
    PAT0001_LABELS,
    REPO_ROOT,
    SLICER_SEGMENTATION,
    assert_refused,
    save_nifti,
)

pytestmark = [pytest.mark.needs_data]


def small_labels(shape=(16, 16, 8)) -> np.ndarray:
    """A small uint8 label map with a cube of label 1."""
    data = np.zeros(shape, dtype=np.uint8)
    data[4:12, 4:12, 2:6] = 1
    return data


def patched_nifti(path, offset: int, fmt: str, value) -> object:
    """A valid small NIfTI with one header field overwritten (byte ``offset``, struct format ``fmt``)."""
    save_nifti(path, small_labels())
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "field, offset, fmt, value, fault",
    [
        ("datatype", 70, "<h", 999, "data code 999 not recognized"),
        ("vox_offset", 108, "<f", -352.0, "vox offset -352 too low"),
        ("scl_inter", 116, "<f", float("inf"), "Valid slope but invalid intercept inf"),
    ],
)
def test_nifti_headers_nibabel_refuses_get_a_plain_sentence(tmp_path, capsys, field, offset, fmt, value, fault):
    path = patched_nifti(tmp_path / f"{field}.nii", offset, fmt, value)
    assert_refused(path, f"not a readable NIfTI file ({fault}", tmp_path / "out", capsys)


def test_complex_voxels_are_refused(tmp_path, capsys):
    path = save_nifti(tmp_path / "complex.nii", small_labels().astype(np.complex64))
    assert_refused(path, "complex64 is complex", tmp_path / "out", capsys)


def test_a_gzip_bomb_nifti_is_refused_by_its_declared_size(tmp_path, capsys):
    header = nibabel.Nifti1Header()
    header.set_data_shape((1024, 512, 512))
    header.set_data_dtype(np.float64)
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(header.binaryblock + b"\0" * 4 + b"\0" * (1 << 20))
    assert_refused(path, "declares 2.00 GiB of voxels, above the 1.00 GiB limit", tmp_path / "out", capsys)


def test_the_input_limit_is_overridable(tmp_path, capsys, monkeypatch):
    path = save_nifti(tmp_path / "small.nii.gz", small_labels())
    monkeypatch.setenv(MAX_INPUT_ENVIRONMENT_VARIABLE, "0.000001")
    with pytest.raises(DENError, match=f"set {MAX_INPUT_ENVIRONMENT_VARIABLE} to raise it"):
        load_segmentation(path)
    monkeypatch.setenv(MAX_INPUT_ENVIRONMENT_VARIABLE, "0.01")
    assert load_segmentation(path).shape == (16, 16, 8)


def test_an_integer_mri_passed_as_segmentation_is_not_a_label_map(tmp_path, capsys):
    flair = nibabel.load(str(PAT0001_FLAIR))
    data = np.asanyarray(flair.dataobj)
    levels = np.round((data - data.min()) * 200).astype(np.int16)
    path = save_nifti(tmp_path / "t1c_int.nii.gz", levels, flair.affine)
    for mode in ("reference", "oriented"):
        assert_refused(path, "not a label map:", tmp_path / f"out_{mode}", capsys, extra=("--mode", mode))


def test_absurd_spacing_in_oriented_mode_is_refused_before_allocating(tmp_path, capsys):
    path = save_nifti(tmp_path / "spacing.nii.gz", small_labels((240, 240, 4)), np.diag([1.0, 1000.0, 1.0, 1.0]))
    assert_refused(path, "too unequal", tmp_path / "out", capsys, extra=("--mode", "oriented", "--plane", "axial"))


# --- NRRD ---------------------------------------------------------------------------------------------------------


def nrrd_header(sizes=(16, 16, 8), encoding="raw", extra: str = "", directions="(1,0,0) (0,1,0) (0,0,1)") -> str:
    """The text of a NRRD header for uint8 voxels."""
    return (
        f"NRRD0004\ntype: uint8\ndimension: {len(sizes)}\nspace: left-posterior-superior\n"
        f"sizes: {' '.join(map(str, sizes))}\nspace directions: {directions}\n"
        f"kinds: {' '.join(['domain'] * len(sizes))}\nencoding: {encoding}\nspace origin: (0,0,0)\n{extra}"
    )


def write_nrrd(path, header: str, payload: bytes = b"") -> object:
    """An attached NRRD: header, blank line, payload."""
    path.write_bytes(header.encode() + b"\n" + payload)
    return path


def test_a_plain_nrrd_reads_like_the_same_nifti(tmp_path):
    labels = small_labels()
    volume = load_segmentation(write_nrrd(tmp_path / "ok.nrrd", nrrd_header(), labels.tobytes(order="F")))
    assert np.array_equal(volume.data, labels)
    assert np.allclose(volume.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    "directions, fault",
    [
        ("(1,0,0) (0,1,0)", "'space directions'"),
        ("(1,0) (0,1) (0,0)", "'space directions'"),
        ("none (0,1,0) (0,0,1)", "not 'none'"),
    ],
)
def test_nrrd_space_directions_of_the_wrong_shape_get_a_plain_sentence(tmp_path, capsys, directions, fault):
    path = write_nrrd(tmp_path / "dirs.nrrd", nrrd_header(directions=directions), small_labels().tobytes(order="F"))
    assert_refused(path, fault, tmp_path / "out", capsys)


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.raw", "/dev/urandom"])
def test_a_detached_data_file_outside_the_header_folder_is_never_read(tmp_path, capsys, target):
    folder = tmp_path / "case"
    folder.mkdir()
    (tmp_path / "outside.raw").write_bytes(small_labels().tobytes(order="F"))
    header = folder / "seg.nhdr"
    header.write_text(nrrd_header(encoding="gzip" if "urandom" in target else "raw", extra=f"data file: {target}\n"))
    assert_refused(header, "lies outside the header's folder", tmp_path / "out", capsys)


def test_a_detached_data_file_that_is_a_fifo_is_refused_without_hanging(tmp_path, capsys):
    os.mkfifo(tmp_path / "voxels.raw")
    header = tmp_path / "seg.nhdr"
    header.write_text(nrrd_header(extra="data file: voxels.raw\n"))
    assert_refused(header, "is not a regular file", tmp_path / "out", capsys)


def test_a_detached_data_file_in_the_header_folder_is_read(tmp_path):
    labels = small_labels()
    (tmp_path / "voxels.raw.gz").write_bytes(gzip.compress(labels.tobytes(order="F")))
    header = tmp_path / "seg.nhdr"
    header.write_text(nrrd_header(encoding="gzip", extra="data file: voxels.raw.gz\n"))
    assert np.array_equal(load_segmentation(header).data, labels)


def compressed_zeros(total: int, compressor) -> bytes:
    """``total`` bytes (a first voxel of 1, then zeros) compressed chunk by chunk."""
    parts = [compressor.compress(b"\1" + b"\0" * ((1 << 20) - 1))]
    parts += [compressor.compress(b"\0" * (1 << 20)) for _ in range(total // (1 << 20) - 1)]
    return b"".join(parts) + compressor.flush()


def peak_rss_mb_loading(path) -> float:
    """Load ``path`` as a segmentation in a fresh process; return that process's peak resident memory in MB (VmHWM:
    unlike ``ru_maxrss``, it is not inherited from the forking test process)."""
    code = (
        "import re\n"
        "from DENExtractorLib import load_segmentation\n"
        f"volume = load_segmentation({str(path)!r})\n"
        "assert volume.shape == (64, 64, 64), volume.shape\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) / 1024)\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["gzip", "bzip2"])
def test_a_compressed_nrrd_payload_is_decompressed_only_up_to_its_declared_size(tmp_path, encoding):
    compressor = zlib.compressobj(wbits=31) if encoding == "gzip" else __import__("bz2").BZ2Compressor()
    payload = compressed_zeros(768 << 20, compressor)  # 768 MiB of voxels behind a 64^3 (256 KiB) header
    path = write_nrrd(tmp_path / "bomb.nrrd", nrrd_header((64, 64, 64), encoding), payload)
    assert peak_rss_mb_loading(path) < 300


# --- Slicer .seg.nrrd -----------------------------------------------------------------------------------------------


def edited_segmentation(tmp_path, old: bytes, new: bytes):
    """The real slicerio segmentation with one header text replaced."""
    raw = SLICER_SEGMENTATION.read_bytes()
    assert old in raw
    path = tmp_path / "edited.seg.nrrd"
    path.write_bytes(raw.replace(old, new, 1))
    return path


@pytest.mark.parametrize("geometry", [b"garbage;1;2", b"1;0;0;0;0;1;0;0;0;0;1;0;0;0;0;1;0;127"])
def test_a_garbage_or_short_reference_geometry_gets_a_plain_sentence(tmp_path, capsys, geometry):
    raw = SLICER_SEGMENTATION.read_bytes()
    start = raw.index(b"Reference image geometry|") + len(b"Reference image geometry|")
    old = raw[start : raw.index(b"|", start)]
    path = edited_segmentation(tmp_path, old, geometry)
    assert_refused(path, "'Reference image geometry' is malformed", tmp_path / "out", capsys)


def test_a_segment_with_a_negative_label_value_is_refused(tmp_path, capsys):
    path = edited_segmentation(tmp_path, b"Segment0_LabelValue:=1", b"Segment0_LabelValue:=-1")
    assert_refused(path, "has label value -1", tmp_path / "out", capsys)


# --- weights files ----------------------------------------------------------------------------------------------------


def test_a_weights_file_with_a_huge_compressed_kernel_is_refused_from_its_metadata(tmp_path, capsys):
    path = tmp_path / "bomb.weights.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", shape=(6400, 400000), dtype="float32", compression="gzip", chunks=(640, 4000))
    assert path.stat().st_size < 1 << 20
    seg = SLICER_SEGMENTATION
    assert_refused(path, "has shape (6400, 400000), which DEN's layers do not have", tmp_path / "out", capsys,
                   extra=(), as_weights_for=seg)


@pytest.mark.slow
def test_a_keras_archive_with_a_huge_member_is_refused_from_its_metadata(tmp_path, capsys):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("model.weights.h5", "w", force_zip64=True) as member:
        for _ in range(320):
            member.write(b"\0" * (1 << 20))
    assert path.stat().st_size < 2 << 20
    assert_refused(path, "declares 320 MiB", tmp_path / "out", capsys, as_weights_for=SLICER_SEGMENTATION)


@pytest.mark.slow
def test_weights_with_nan_or_inf_values_are_refused(tmp_path, capsys):
    from DENExtractorLib import build_model

    model = build_model()
    weights = model.get_weights()
    weights[-2][0, 0] = np.nan
    weights[0][0, 0, 0, 0] = np.inf
    model.set_weights(weights)
    path = tmp_path / "broken.weights.h5"
    model.save_weights(str(path))
    assert_refused(path, "2 weight values are NaN or infinite", tmp_path / "out", capsys, as_weights_for=SLICER_SEGMENTATION)


# --- the fast gzip path -------------------------------------------------------------------------------------------


def test_gzipped_nifti_voxels_equal_nibabels_on_every_shared_file():
    from DENExtractorLib.readers.nifti import read_nifti

    files = sorted(DATA.rglob("*.nii.gz"))
    assert len(files) >= 6
    for path in files:
        data, _, _ = read_nifti(path)
        expected = np.asanyarray(nibabel.load(str(path)).dataobj)
        assert data.dtype == expected.dtype and data.shape == expected.shape, path
        assert np.array_equal(data, expected), path


def test_a_nifti_split_into_several_gzip_members_reads_whole_and_a_truncated_one_is_refused(tmp_path, capsys):
    from DENExtractorLib.readers.nifti import read_nifti

    raw = gzip.decompress(PAT0001_LABELS.read_bytes())
    members = tmp_path / "members.nii.gz"
    members.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    data, _, _ = read_nifti(members)
    assert np.array_equal(data, np.asanyarray(nibabel.load(str(PAT0001_LABELS)).dataobj))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    assert_refused(truncated, "truncated or corrupt file", tmp_path / "out", capsys)
