"""Every bad input gets a one-line error naming the file and the fault, a non-zero exit status, and no output."""

from __future__ import annotations

import gzip

import nibabel
import numpy as np
import pytest
from helpers import PAT0001_LABELS, assert_refused, run_cli, save_nifti

pytestmark = [pytest.mark.needs_data]


def labels_with(value: float, shape=(20, 20, 12)) -> np.ndarray:
    """A small label map with a cube of label 1 and one voxel set to ``value``."""
    data = np.zeros(shape, dtype=np.float32)
    data[5:15, 5:15, 3:9] = 1
    data[6, 6, 6] = value
    return data


def test_missing_file(tmp_path, capsys):
    assert_refused(tmp_path / "absent.nii.gz", "no such file", tmp_path / "out", capsys)


def test_not_a_volume_file(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert_refused(text, "not a NIfTI", tmp_path / "out", capsys)
    fake = tmp_path / "fake.nii.gz"
    fake.write_text("not an image either")
    assert_refused(fake, "not a readable NIfTI file", tmp_path / "out", capsys)


def test_truncated_gzip(tmp_path, capsys):
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(PAT0001_LABELS.read_bytes()[:50_000])
    assert_refused(truncated, "truncated or corrupt", tmp_path / "out", capsys)


def test_two_and_four_dimensional_data(tmp_path, capsys):
    flat = save_nifti(tmp_path / "flat.nii.gz", np.ones((20, 20), np.uint8))
    assert_refused(flat, "expected a 3-D volume, got 2-D", tmp_path / "out", capsys)
    series = save_nifti(tmp_path / "series.nii.gz", np.ones((10, 10, 10, 3), np.uint8))
    assert_refused(series, "expected a 3-D volume, got 4-D", tmp_path / "out", capsys)


@pytest.mark.slow
def test_trailing_singleton_axis_is_accepted(tmp_path, capsys):
    single = save_nifti(tmp_path / "single.nii.gz", labels_with(1)[..., np.newaxis])
    status, _ = run_cli([single, "-o", tmp_path / "out"], capsys)
    assert status == 0 and (tmp_path / "out" / "single_den.npy").is_file()


@pytest.mark.parametrize("value, fault", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (2.5, "non-integer label values")])
def test_bad_voxel_values(tmp_path, capsys, value, fault):
    path = save_nifti(tmp_path / "bad_values.nii.gz", labels_with(value))
    assert_refused(path, fault, tmp_path / "out", capsys)


def test_negative_labels(tmp_path, capsys):
    path = save_nifti(tmp_path / "negative.nii.gz", labels_with(-3))
    assert_refused(path, "negative label value", tmp_path / "out", capsys)


@pytest.mark.slow
def test_labels_beyond_8_bits_in_reference_mode(tmp_path, capsys):
    path = save_nifti(tmp_path / "wide.nii.gz", labels_with(300).astype(np.int16))
    assert_refused(path, "does not fit in 8 bits", tmp_path / "out", capsys)
    status, lines = run_cli([path, "-o", tmp_path / "out2", "--mode", "oriented"], capsys)
    assert status == 1 and "exceeds the label scale 4: give --label-max 300" in lines[0]
    status, _ = run_cli([path, "-o", tmp_path / "out3", "--mode", "oriented", "--label-max", "300"], capsys)
    assert status == 0


def test_no_foreground(tmp_path, capsys):
    path = save_nifti(tmp_path / "empty.nii.gz", np.zeros((20, 20, 12), np.uint8))
    assert_refused(path, "no foreground", tmp_path / "out", capsys)


def test_absurd_dimensions_are_refused_before_reading(tmp_path, capsys):
    header = nibabel.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((30000, 30000, 30000))
    path = tmp_path / "huge.nii"
    with open(path, "wb") as handle:
        header.write_to(handle)
        handle.write(b"\0" * 1000)
    assert_refused(path, "exceed the limit", tmp_path / "out", capsys)


def test_corrupt_gzip_stream(tmp_path, capsys):
    good = gzip.decompress(PAT0001_LABELS.read_bytes())
    path = tmp_path / "garbled.nii.gz"
    path.write_bytes(gzip.compress(good[:400]) + b"garbage after the header" * 100)
    assert_refused(path, "not a readable NIfTI file", tmp_path / "out", capsys)


def test_unreadable_and_mismatched_weights(tmp_path, capsys):
    seg = save_nifti(tmp_path / "seg.nii.gz", labels_with(1))
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF not really" * 50)
    assert_refused_weights(seg, corrupt, "cannot load these weights", tmp_path / "out", capsys)
    assert_refused_weights(seg, tmp_path / "absent.keras", "no such weights file", tmp_path / "out", capsys)


def assert_refused_weights(seg, weights, fault, out_dir, capsys) -> None:
    """den-extract with bad weights fails with one line naming the weights file, and writes nothing."""
    status, lines = run_cli([seg, "-o", out_dir, "--weights", weights], capsys)
    assert status != 0
    assert len(lines) == 1 and str(weights) in lines[0] and fault in lines[0], lines
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_a_failed_write_leaves_no_half_written_file(tmp_path):
    from DENExtractorLib.outputs.atomic import write_atomically

    target = tmp_path / "features.npy"
    target.write_bytes(b"previous complete content")

    def failing_write(path):
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, failing_write)
    assert target.read_bytes() == b"previous complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npy"]
