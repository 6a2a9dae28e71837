"""An unusable output folder is refused first, in one line naming the folder, with exit status 2 and nothing computed;
a full disk during a run names the folder and says so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from DENExtractorLib.cli.options import EXIT_BAD_INPUT
from helpers import PAT0001_LABELS, run_cli

pytestmark = [pytest.mark.root, pytest.mark.needs_data]


def assert_unusable(out_dir, fault: str, capsys) -> None:
    """den-extract refuses ``out_dir`` with exit status 2 and one line naming it and the fault."""
    status, lines = run_cli([PAT0001_LABELS, "-o", out_dir], capsys)
    assert status == EXIT_BAD_INPUT
    assert len(lines) == 1 and "error:" in lines[0], lines
    assert str(out_dir) in lines[0] and fault in lines[0], lines[0]


def test_an_output_path_that_is_a_file(tmp_path, capsys):
    taken = tmp_path / "results"
    taken.write_text("not a folder")
    assert_unusable(taken, "exists and is not a folder", capsys)


def test_an_output_folder_under_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file")
    assert_unusable(tmp_path / "notes.txt" / "out", "notes.txt is a file, not a folder", capsys)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted for the test (the suite runs as root, as CI does), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_read_only_file_system(small_tmpfs, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    assert_unusable(small_tmpfs / "out", "read-only file system", capsys)


def test_a_full_disk_before_the_run(small_tmpfs, capsys):
    with pytest.raises(OSError, match="No space left on device"), open(small_tmpfs / "filler", "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    assert_unusable(small_tmpfs, "no space left on device", capsys)


@pytest.mark.slow
def test_a_disk_that_fills_during_the_run_names_the_folder_and_leaves_no_partial_file(small_tmpfs, capsys):
    status, lines = run_cli([PAT0001_LABELS, "-o", small_tmpfs], capsys)  # the 3.9 MB feature matrix cannot fit
    assert status != 0
    assert len(lines) == 1 and f"{small_tmpfs}: no space left on device" in lines[0], lines
    assert list(Path(small_tmpfs).iterdir()) == []


def test_an_output_name_taken_by_a_folder_fails_that_case_before_computing(tmp_path, capsys):
    out_dir = tmp_path / "out"
    (out_dir / "pat0001_den.npy").mkdir(parents=True)
    status, lines = run_cli([PAT0001_LABELS, "-o", out_dir], capsys)
    assert status == 1
    assert len(lines) == 1 and "pat0001_den.npy: an output of this case would replace this existing folder" in lines[0]
    assert sorted(path.name for path in out_dir.iterdir()) == ["pat0001_den.npy"]
