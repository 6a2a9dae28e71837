"""What a user gets on disk: the feature matrix, its provenance, the heatmap picture; and the one-command demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
from DENExtractorLib import MODEL_ID, REFERENCE_WEIGHTS_SHA256, write_outputs
from DENExtractorLib.cli.extract import main
from DENExtractorLib.demo import synthetic_glioblastoma
from DENExtractorLib.hashing import file_sha256
from helpers import PAT0001_LABELS
from PIL import Image

pytestmark = [pytest.mark.needs_data]


def test_outputs_hold_features_provenance_and_heatmap(tmp_path, reference_result):
    written = write_outputs(reference_result, tmp_path, "pat0001")
    assert {kind: path.name for kind, path in written.items()} == {
        "npy": "pat0001_den.npy", "png": "pat0001_den.png", "json": "pat0001_den.json"}
    assert np.array_equal(np.load(written["npy"]), reference_result.features)
    provenance = json.loads(written["json"].read_text())
    assert provenance["model"] == {"id": MODEL_ID, "weights_sha256": REFERENCE_WEIGHTS_SHA256, "weights_source": "bundled"}
    assert provenance["input"]["sha256"] == file_sha256(PAT0001_LABELS)
    assert provenance["input"]["shape"] == [240, 240, 155]
    assert np.allclose(provenance["input"]["affine"], [[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert provenance["settings"]["mode"] == "reference"
    assert provenance["preprocessing"]["resize"]["filter"] == "bicubic"
    assert provenance["features"]["shape"] == [240, 4096]
    assert provenance["features"]["foreground_rows"] == reference_result.foreground_rows.tolist()
    assert {"denextractor", "python", "numpy", "nibabel", "keras"} <= set(provenance["software"])
    assert provenance["elapsed_seconds"] > 0
    assert provenance["outputs"] == {
        "npy": {"file": "pat0001_den.npy", "sha256": file_sha256(written["npy"])},
        "png": {"file": "pat0001_den.png", "sha256": file_sha256(written["png"])},
    }
    picture = Image.open(written["png"])
    assert picture.format == "PNG" and picture.size == (1000, 500)


def test_synthetic_glioblastoma_is_realistic_and_reproducible():
    labels, affine = synthetic_glioblastoma(shape=(96, 96, 64), seed=5)
    again, _ = synthetic_glioblastoma(shape=(96, 96, 64), seed=5)
    assert np.array_equal(labels, again)
    counts = {value: int((labels == value).sum()) for value in (1, 2, 3, 4)}
    assert all(count > 0 for count in counts.values()), counts
    assert counts[2] > counts[4] > 0  # oedema surrounds a thinner enhancing rim
    assert labels[0].max() == 0 and labels[:, :, -1].max() == 0  # the tumour lies inside the volume
    assert np.linalg.det(affine[:3, :3]) != 0


@pytest.mark.slow
def test_demo_runs_the_main_job_in_one_command(tmp_path, capsys):
    assert main(["--demo", "synthetic", "-o", str(tmp_path), "--quiet"]) == 0
    features = np.load(tmp_path / "synthetic_glioblastoma_den.npy")
    assert features.shape == (240, 4096) and features.max() > 0
    assert (tmp_path / "synthetic_glioblastoma_den.png").is_file()
    assert (tmp_path / "synthetic_glioblastoma.nii.gz").is_file()


@pytest.mark.slow
def test_demo_on_a_real_case(tmp_path, capsys, reference_result):
    assert main(["--demo", str(PAT0001_LABELS), "-o", str(tmp_path), "--quiet", "--no-png"]) == 0
    assert np.array_equal(np.load(tmp_path / "pat0001_den.npy"), reference_result.features)
    assert not (tmp_path / "pat0001_den.png").exists()
