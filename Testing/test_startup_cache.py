"""Start-up caches: the reference weights and the windowed probe's answer, kept in DEN's cache folder, checked on
every load, rebuilt when absent or damaged, and moving no feature."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from DENExtractorLib.network.bundled import (
    CACHE_FOLDER_VARIABLE,
    REFERENCE_WEIGHTS_SHA256,
    draw_reference_weights,
    reference_weights,
    weights_cache_path,
)
from helpers import PAT0001_LABELS, REPO_ROOT


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache folder for this test, named by $DEN_CACHE_DIR."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_FOLDER_VARIABLE, str(folder))
    return folder


def _file_sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same_arrays(found: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(found) == len(expected)
    for mine, theirs in zip(found, expected, strict=True):
        assert mine.dtype == theirs.dtype == np.float32 and mine.shape == theirs.shape
        assert np.array_equal(mine, theirs)


@pytest.fixture(scope="module")
def drawn() -> list[np.ndarray]:
    """The reference weights drawn from the seed, without any cache."""
    return draw_reference_weights()


@pytest.mark.slow
def test_first_load_writes_the_cache_and_later_loads_read_the_same_weights(cache_dir, drawn):
    assert not weights_cache_path().exists()
    _assert_same_arrays(reference_weights(), drawn)
    assert weights_cache_path().parent == cache_dir
    assert _file_sha256(weights_cache_path()) == REFERENCE_WEIGHTS_SHA256
    written = weights_cache_path().stat().st_mtime_ns
    cached = reference_weights()
    _assert_same_arrays(cached, drawn)
    assert weights_cache_path().stat().st_mtime_ns == written  # read, not rewritten
    cached[0][0, 0, 0, 0] = 5.0  # the caller's own copy
    _assert_same_arrays(reference_weights(), drawn)


@pytest.mark.parametrize("damage", ["one flipped byte", "truncated", "empty", "a folder in its place"])
@pytest.mark.slow
def test_a_damaged_cache_is_detected_and_rebuilt(cache_dir, drawn, damage):
    reference_weights()
    path = weights_cache_path()
    if damage == "one flipped byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-4])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    _assert_same_arrays(reference_weights(), drawn)
    if damage == "a folder in its place":  # cannot be replaced: the weights are drawn, nothing fails
        assert path.is_dir()
    else:
        assert _file_sha256(path) == REFERENCE_WEIGHTS_SHA256
    assert not [name for name in os.listdir(cache_dir) if name.endswith(".partial")]


def test_an_unwritable_cache_folder_only_means_drawing_again(tmp_path, monkeypatch, drawn):
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the cache folder would be", encoding="utf-8")
    monkeypatch.setenv(CACHE_FOLDER_VARIABLE, str(blocker / "cache"))
    _assert_same_arrays(reference_weights(), drawn)


def _den_extract(out, cache) -> bytes:
    """Run den-extract on pat0001 as a whole process with the given cache folder; return the .npy bytes."""
    environment = dict(os.environ, **{CACHE_FOLDER_VARIABLE: str(cache)},
                       PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    command = [sys.executable, "-m", "DENExtractorLib.cli", str(PAT0001_LABELS), "-o", str(out), "--no-png", "-q"]
    subprocess.run(command, check=True, capture_output=True, env=environment)
    return (out / "pat0001_den.npy").read_bytes()


@pytest.mark.slow
@pytest.mark.needs_data
def test_cached_and_uncached_processes_write_identical_features(tmp_path):
    """A process drawing the weights and probing, one reading both caches, and one finding them damaged write
    byte-identical .npy files; the damaged caches are rebuilt."""
    cache = tmp_path / "cache"
    uncached = _den_extract(tmp_path / "first", cache)
    probe_cache = cache / "windowed-probe.json"
    assert _file_sha256(next(cache.glob("den-ref-v1-*.f32"))) == REFERENCE_WEIGHTS_SHA256
    answers = json.loads(probe_cache.read_text(encoding="utf-8"))
    assert list(answers.values()) in ([True], [False])
    assert _den_extract(tmp_path / "second", cache) == uncached
    weights_file = next(cache.glob("den-ref-v1-*.f32"))
    data = bytearray(weights_file.read_bytes())
    data[1000] ^= 0x80
    weights_file.write_bytes(bytes(data))
    probe_cache.write_text("{not json", encoding="utf-8")
    assert _den_extract(tmp_path / "third", cache) == uncached
    assert _file_sha256(weights_file) == REFERENCE_WEIGHTS_SHA256
    assert json.loads(probe_cache.read_text(encoding="utf-8")) == answers


@pytest.mark.slow
def test_tensorflow_loads_without_the_packages_den_does_not_use_and_they_import_afterwards():
    script = ("import sys\nfrom DENExtractorLib.network.model import UNNEEDED_AT_IMPORT, import_keras\n"
              "import_keras()\nprint(sorted(name for name in UNNEEDED_AT_IMPORT if name in sys.modules))\n"
              "import sklearn, scipy.sparse\nprint(sklearn.__name__, scipy.sparse.__name__)\n")
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=environment)
    assert done.stdout.splitlines() == ["[]", "sklearn scipy.sparse"]
