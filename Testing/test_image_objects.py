"""Images in the API: nibabel and SimpleITK images accepted wherever a file path is, with the same checks and the
same features as the file."""

from __future__ import annotations

import nibabel
import numpy as np
import pytest
from DENExtractorLib import load_image, load_segmentation
from DENExtractorLib.errors import DENError
from helpers import DATA, PAT0001_LABELS

SimpleITK = pytest.importorskip("SimpleITK")

CAPTK = DATA / "captk_AAAC0"
CAPTK_MASK = CAPTK / "AAAC0_flair_pp_shrunk_testTumor.nii.gz"
CAPTK_FLAIR = CAPTK / "AAAC0_flair_pp_shrunk.nii.gz"


@pytest.mark.slow
@pytest.mark.needs_data
def test_a_nibabel_or_simpleitk_image_gives_the_features_of_its_file(reference_extractor, reference_result):
    from_nibabel = reference_extractor.extract_file(nibabel.load(PAT0001_LABELS))
    assert from_nibabel.features.tobytes() == reference_result.features.tobytes()
    from_simpleitk = reference_extractor.extract_file(SimpleITK.ReadImage(str(PAT0001_LABELS)))
    assert from_simpleitk.features.tobytes() == reference_result.features.tobytes()
    assert from_simpleitk.provenance["input"]["source"].startswith("SimpleITK image")


@pytest.mark.slow
@pytest.mark.needs_data
def test_image_mode_with_image_objects_equals_the_files_in_oriented_mode(tmp_path):
    from DENExtractorLib import DENExtractor

    extractor = DENExtractor(mode="oriented", plane="sagittal")
    expected = extractor.extract_file(CAPTK_MASK, CAPTK_FLAIR).features
    objects = extractor.extract_file(SimpleITK.ReadImage(str(CAPTK_MASK)), nibabel.load(CAPTK_FLAIR)).features
    assert objects.tobytes() == expected.tobytes()


@pytest.mark.needs_data
def test_simpleitk_geometry_becomes_the_nifti_affine():
    from_file = load_segmentation(CAPTK_MASK)
    from_simpleitk = load_segmentation(SimpleITK.ReadImage(str(CAPTK_MASK)))
    np.testing.assert_array_equal(from_simpleitk.data, from_file.data)
    np.testing.assert_allclose(from_simpleitk.affine, from_file.affine, atol=1e-5)
    assert not np.allclose(from_file.affine, np.eye(4))  # a real, non-trivial geometry was compared


def test_image_objects_get_the_same_checks_as_files(monkeypatch):
    with pytest.raises(DENError, match=r"^nibabel Nifti1Image: .*no foreground"):
        load_segmentation(nibabel.Nifti1Image(np.zeros((8, 8, 8), dtype=np.uint8), np.eye(4)))
    halves = np.full((8, 8, 8), 0.5, dtype=np.float32)
    with pytest.raises(DENError, match="non-integer label values"):
        load_segmentation(SimpleITK.GetImageFromArray(halves))
    nan = halves.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(DENError, match="NaN"):
        load_image(SimpleITK.GetImageFromArray(nan))
    vector = SimpleITK.Image([8, 8, 8], SimpleITK.sitkVectorFloat32, 3)
    with pytest.raises(DENError, match="3 components per voxel: DEN needs a scalar image"):
        load_image(vector)
    monkeypatch.setenv("DEN_MAX_INPUT_GB", "0.000001")
    with pytest.raises(DENError, match=r"above the 0\.00 GiB limit"):
        load_image(SimpleITK.Image([64, 64, 64], SimpleITK.sitkFloat32))
