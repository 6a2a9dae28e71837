"""Memory bounded by the header: lying offsets, gzip bombs at the input limit, and weights files whose types or
configuration would grow past gigabytes are refused (or read) with a peak under 1.5 GB, measured by ``wait4`` on a
real ``den-extract`` process."""

from __future__ import annotations

import json
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
from DENExtractorLib.network.architecture import LAYERS, weight_specs
from helpers import REPO_ROOT

pytestmark = pytest.mark.slow

PEAK_LIMIT_BYTES = 1.5e9
GIB = 1 << 30


MEASURED_RUN = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, "-m", "DENExtractorLib.cli", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""
"""Runs den-extract as a forked child of a small launcher and prints its exit status and peak RSS. Linux records
the peak of the memory a process replaced by ``exec`` as its own, and ``subprocess`` starts children with vfork
(sharing the test process's memory, gigabytes late in a suite): the launcher's fork gives den-extract a copy of a
small process instead, so ``wait4`` measures den-extract alone."""


def den_extract_peak(*arguments) -> tuple[int, str, int]:
    """Run den-extract in a fresh process; return its exit status, its stderr and its peak RSS in bytes."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    completed = subprocess.run([sys.executable, "-c", MEASURED_RUN, *map(str, arguments), "--quiet"],
                               capture_output=True, text=True, env=environment, check=False)
    status, peak = completed.stdout.split()
    return int(status), completed.stderr, int(peak)


def write_gzip_zeros(handle, count: int) -> None:
    """Stream ``count`` zero bytes through gzip into ``handle`` (a bomb: about 1 MB per GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(16 << 20)
    for start in range(0, count, len(block)):
        handle.write(compressor.compress(block[: min(len(block), count - start)]))
    handle.write(compressor.flush())


def nifti_header(shape, dtype, vox_offset: float, version: int = 1) -> bytes:
    """A NIfTI header block (with the 4 extension bytes for NIfTI-1) declaring ``vox_offset``."""
    header = nibabel.Nifti1Header() if version == 1 else nibabel.Nifti2Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    raw = bytearray(header.binaryblock)
    if version == 1:
        struct.pack_into("<f", raw, 108, vox_offset)
    else:
        struct.pack_into("<q", raw, 168, int(vox_offset))
    return bytes(raw) + b"\0" * 4


@pytest.mark.parametrize("vox_offset, version", [(3e9, 1), (1e9, 1), (4e9, 2)])
def test_a_lying_vox_offset_is_refused_without_allocating_it(tmp_path, vox_offset, version):
    path = tmp_path / f"offset{version}.nii.gz"
    with open(path, "wb") as handle:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        handle.write(compressor.compress(nifti_header((16, 16, 8), np.uint8, vox_offset, version)) + compressor.flush())
    status, stderr, peak = den_extract_peak(path, "-o", tmp_path / "out")
    assert status == 1 and "vox_offset" in stderr and str(path) in stderr, stderr
    print(f"peak RSS {peak / 1e9:.2f} GB")
    assert peak < PEAK_LIMIT_BYTES / 4, peak


def test_a_gzip_nifti_bomb_declaring_exactly_the_limit_stays_under_the_bound(tmp_path):
    path = tmp_path / "bomb.nii.gz"
    header = nifti_header((1024, 512, 512), np.float32, 352.0)
    with open(path, "wb") as handle:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        handle.write(compressor.compress(header))
        block = bytes(16 << 20)
        for _ in range(GIB // len(block)):
            handle.write(compressor.compress(block))
        handle.write(compressor.flush())
    status, stderr, peak = den_extract_peak(path, "-o", tmp_path / "out")
    assert status == 1 and "no foreground" in stderr, stderr
    print(f"peak RSS {peak / 1e9:.2f} GB")
    assert peak < PEAK_LIMIT_BYTES, peak


def test_a_gzip_nrrd_bomb_declaring_exactly_the_limit_stays_under_the_bound(tmp_path):
    path = tmp_path / "bomb.nrrd"
    with open(path, "wb") as handle:
        handle.write(b"NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 1024 512 512\n"
                     b"space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: gzip\n\n")
        write_gzip_zeros(handle, GIB)
    status, stderr, peak = den_extract_peak(path, "-o", tmp_path / "out")
    assert status == 1 and "no foreground" in stderr, stderr
    print(f"peak RSS {peak / 1e9:.2f} GB")
    assert peak < PEAK_LIMIT_BYTES, peak


def test_weights_of_the_right_shapes_but_a_string_type_are_refused_from_metadata(tmp_path, small_case):
    path = tmp_path / "strings.weights.h5"
    with h5py.File(path, "w") as handle:
        for index, spec in enumerate(weight_specs()):
            handle.create_dataset(f"layers/{index}/vars/0", shape=spec.shape, dtype="S96", chunks=True)
    status, stderr, peak = den_extract_peak(small_case, "--weights", path, "-o", tmp_path / "out")
    assert status == 2 and "holds |S96 values, not floating-point numbers" in stderr, stderr
    print(f"peak RSS {peak / 1e9:.2f} GB")
    assert peak < PEAK_LIMIT_BYTES / 4, peak


def keras_archive(path, units: int, extra_layer: str | None = None) -> None:
    """A ``.keras`` archive whose config.json lists DEN's layers as Keras writes them, but the Dense layer with
    ``units`` (and ``extra_layer`` before it)."""
    layers = [{"class_name": "InputLayer", "config": {"batch_shape": [None, 224, 224, 1]}}]
    for spec in LAYERS:
        if spec[0] == "conv":
            _, filters, kernel, stride, padding = spec
            layers.append({"class_name": "Conv2D", "config": {"filters": filters, "kernel_size": [kernel, kernel],
                                                              "strides": [stride, stride], "padding": padding,
                                                              "activation": "linear"}})
        elif spec[0] == "dense":
            if extra_layer:
                layers.append({"class_name": extra_layer, "config": {}})
            layers.append({"class_name": "Dense", "config": {"units": units, "activation": "linear"}})
        else:
            names = {"relu": "Activation", "batchnorm": "BatchNormalization", "maxpool": "MaxPooling2D",
                     "flatten": "Flatten"}
            layers.append({"class_name": names[spec[0]], "config": {"activation": "relu"} if spec[0] == "relu" else {}})
    config = {"class_name": "Sequential", "config": {"name": "DEN", "layers": layers}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")


@pytest.mark.parametrize("units, extra, fault", [
                         (120000, None, "is ('dense', 120000, 'linear'), DEN's is ('dense', 4096"),
                                                 (4096, "Lambda", "is ('Lambda',), DEN's is ('dense', 4096")])
def test_a_keras_config_that_is_not_dens_is_refused_before_tensorflow(tmp_path, small_case, units, extra, fault):
    path = tmp_path / "other.keras"
    keras_archive(path, units, extra)
    status, stderr, peak = den_extract_peak(small_case, "--weights", path, "-o", tmp_path / "out")
    assert status == 2 and fault in stderr and str(path) in stderr, stderr
    print(f"peak RSS {peak / 1e9:.2f} GB")
    assert peak < PEAK_LIMIT_BYTES / 4, peak
