"""What a user sees: errors before TensorFlow loads, only our own lines, --version and exit statuses, a heatmap that
says how it was made, provenance that says where and how, and outputs named sensibly when file names collide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from DENExtractorLib import (
    REFERENCE_WEIGHTS_SHA256,
    DENError,
    ExtractionSettings,
    extract_file,
)
from DENExtractorLib.cohorts.cases import find_cases
from DENExtractorLib.outputs.files import heatmap_title
from DENExtractorLib.outputs.record import case_record
from helpers import DATA, PAT0001_LABELS, REPO_ROOT, run_cli, save_nifti

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]

PAT0002_LABELS = DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz"


def den_extract(*arguments, cwd=None) -> subprocess.CompletedProcess:
    """Run den-extract as a user does, in a fresh process, and capture what it prints."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    command = [sys.executable, "-m", "DENExtractorLib.cli", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, cwd=cwd)


def error_before_tensorflow(arguments: list) -> tuple[str, bool]:
    """Run den-extract's main in a fresh process; return its stderr and whether TensorFlow got imported."""
    code = (
        "import sys\n"
        "from DENExtractorLib.cli import main\n"
        f"status = main({[str(argument) for argument in arguments]!r})\n"
        "print('tensorflow' in sys.modules, status)\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    imported, status = done.stdout.split()
    assert status != "0"
    return done.stderr, imported == "True"


@pytest.mark.parametrize(
    "make_arguments, fault",
    [
        (lambda tmp: [tmp / "typo.nii.gz", "-o", tmp / "out"], "typo.nii.gz: no such file"),
        (lambda tmp: [save_bad_header(tmp), "-o", tmp / "out"], "not a readable NIfTI file"),
        (lambda tmp: [PAT0001_LABELS, "-o", make_file(tmp / "taken")], "exists and is not a folder"),
        (lambda tmp: [PAT0001_LABELS, "--weights", make_file(tmp / "w.weights.h5"), "-o", tmp / "out"], "w.weights.h5"),
        (lambda tmp: ["--cohort", tmp / "nowhere", "-o", tmp / "out"], "no such cohort folder"),
        (lambda tmp: [PAT0001_LABELS, "--image", tmp / "mri.nii.gz", "-o", tmp / "out"], "mri.nii.gz: no such file"),
        (lambda tmp: [PAT0001_LABELS, "--labels", "7", "-o", tmp / "out"], "label(s) [7] not in the segmentation"),
    ],
)
def test_errors_about_paths_headers_and_folders_come_before_tensorflow(tmp_path, make_arguments, fault):
    stderr, imported = error_before_tensorflow(make_arguments(tmp_path))
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and fault in lines[0], lines
    assert not imported


def save_bad_header(folder):
    """A .nii.gz that is not gzip at all."""
    path = folder / "bad.nii.gz"
    path.write_bytes(b"definitely not a NIfTI header" * 20)
    return path


def make_file(path):
    """An ordinary small file at ``path``."""
    path.write_text("x")
    return path


def test_a_success_prints_only_our_lines(tmp_path, reference_result):
    done = den_extract(PAT0001_LABELS, "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
    assert done.stdout.strip().splitlines() == [
        f"pat0001: done, 240 rows ({len(reference_result.foreground_rows)} with tumour) -> "
        f"{tmp_path / 'out' / 'pat0001_den.npy'}"
    ]


def test_version_and_exit_statuses_in_help():
    from DENExtractorLib import __version__

    version = den_extract("--version")
    assert version.stdout.strip() == f"den-extract {__version__}"
    help_text = " ".join(den_extract("--help").stdout.split())
    assert "exit status: 0 every case succeeded; 1 a case failed" in help_text
    assert "2 bad arguments, weights, cohort folder or output folder" in help_text


def test_the_installed_version_is_the_one_version():
    from importlib import metadata

    from DENExtractorLib import __version__

    assert metadata.version("DENExtractorLib") == __version__


def test_the_api_refuses_a_plane_in_reference_mode_as_the_cli_does(tmp_path, capsys):
    with pytest.raises(DENError, match="a plane applies to oriented mode"):
        extract_file(PAT0001_LABELS, plane="coronal")
    status, lines = run_cli([PAT0001_LABELS, "--plane", "coronal", "-o", tmp_path], capsys)
    assert status == 2 and lines == ["den-extract: error: plane: a plane applies to oriented mode; reference mode "
                                     "slices along the first stored axis"]


@pytest.mark.parametrize(
    "options, fault",
    [
        ({"mode": "sideways"}, "unknown mode 'sideways'"),
        ({"mode": "oriented", "plane": "oblique"}, "unknown plane 'oblique'"),
        ({"labels": (0, 1)}, "labels must be positive"),
        ({"labels": ("one",)}, "labels must be whole numbers"),
        ({"weights": "missing.weights.h5"}, "no such weights file"),
    ],
)
def test_settings_are_validated_once_with_one_sentence(options, fault):
    with pytest.raises(DENError, match=fault):
        ExtractionSettings(**options)


def test_the_weights_identity_needs_no_network():
    code = (
        "import sys\n"
        "from DENExtractorLib import ExtractionSettings\n"
        "print(ExtractionSettings().weights_identity().sha256, 'tensorflow' in sys.modules)\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)
    assert done.stdout.split() == [REFERENCE_WEIGHTS_SHA256, "False"]


def test_the_heatmap_title_says_mode_plane_and_input(reference_result):
    assert heatmap_title("pat0001", case_record(reference_result.provenance)) == (
        "DEN features of pat0001 (den-ref-v1; reference mode, first stored axis: sagittal, right to left; "
        "label values)"
    )
    oriented = dict(reference_result.provenance, settings=dict(reference_result.provenance["settings"],
                                                               mode="oriented", plane="coronal", label_max=4.0),
                    image={"source": "t1.nii.gz", "sha256": "0"})
    assert heatmap_title("p", case_record(oriented)) == ("DEN features of p (den-ref-v1; oriented mode, coronal plane; "
                                                         "MRI inside the segmentation)")


def test_provenance_says_where_how_and_on_what(tmp_path):
    relative_out = "out"
    done = den_extract(os.path.relpath(PAT0001_LABELS, tmp_path), "-o", relative_out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "pat0001_den.json").read_text())
    assert record["input"]["source"] == str(PAT0001_LABELS.absolute())
    assert record["command_line"].endswith(f"cli/__main__.py {os.path.relpath(PAT0001_LABELS, tmp_path)} -o out")
    assert record["compute"]["device"].startswith(("CPU: ", "GPU: "))
    assert "TF_ENABLE_ONEDNN_OPTS" in record["compute"]


def test_files_that_share_a_name_are_named_by_their_folders(tmp_path, capsys):
    status, lines = run_cli([PAT0001_LABELS, PAT0002_LABELS, "-o", tmp_path / "out"], capsys)
    assert status == 0, lines
    assert sorted(path.name for path in (tmp_path / "out").glob("*.npy")) == ["pat0001_den.npy", "pat0002_den.npy"]


def test_a_cohort_folder_with_glob_brackets_and_hidden_entries(tmp_path):
    root = tmp_path / "study[1]"
    for name in ("a", "b", ".hidden"):
        (root / name).mkdir(parents=True)
        save_nifti(root / name / "seg.nii.gz", np.ones((4, 4, 4), dtype=np.uint8))
    found = find_cases(root, "{id}/seg.nii.gz")
    assert [case.case_id for case in found.cases] == ["a", "b"]
    assert found.skipped_hidden == [".hidden/seg.nii.gz"]


def test_a_cohort_of_linked_case_folders_is_found_and_a_link_loop_is_walked_once(tmp_path):
    root = tmp_path / "cohort"
    root.mkdir()
    for case_id in ("pat0001", "pat0002"):
        (root / case_id).symlink_to(DATA / "brats2015" / case_id, target_is_directory=True)
    (root / "pat0001_again").symlink_to(root, target_is_directory=True)
    for pattern in ("{id}/OTMultiClass.nii.gz", "{id}/**/OTMultiClass.nii.gz"):
        assert [case.case_id for case in find_cases(root, pattern).cases] == ["pat0001", "pat0002"]


def test_long_case_ids_work_up_to_the_file_system_limit(tmp_path, capsys):
    labels = np.zeros((16, 16, 8), dtype=np.uint8)
    labels[4:12, 4:12, 2:6] = 1
    fitting = save_nifti(tmp_path / ("c" * 240 + ".nii.gz"), labels)
    status, lines = run_cli([fitting, "-o", tmp_path / "out"], capsys)
    assert status == 0, lines
    cohort = tmp_path / "cohort"
    (cohort / ("d" * 250)).mkdir(parents=True)
    save_nifti(cohort / ("d" * 250) / "seg.nii.gz", labels)
    status, lines = run_cli(["--cohort", cohort, "--pattern", "{id}/seg.nii.gz", "-o", tmp_path / "out2"], capsys)
    errors = [line for line in lines if "error:" in line]
    assert status == 1 and len(errors) == 1 and "longer than 255 bytes: use a shorter case id" in errors[0]
