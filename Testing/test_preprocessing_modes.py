"""Reference mode reproduces the published pipeline; oriented and image modes behave as documented."""

from __future__ import annotations

import nibabel
import numpy as np
import pytest
from DENExtractorLib import (
    DENError,
    build_model,
    extract,
    extract_file,
    load_segmentation,
    segmentation_from_array,
)
from helpers import (
    PAT0001_FLAIR,
    PAT0001_LABELS,
    SLICER_SEGMENTATION,
    relative_difference,
    save_nifti,
)
from PIL import Image

pytestmark = [pytest.mark.needs_data]


def published_pipeline_features(path) -> np.ndarray:
    """An independent, straightforward implementation of the published preprocessing and prediction."""
    data = nibabel.load(str(path)).get_fdata()
    slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
    stack = np.array(slices)
    stack = np.expand_dims(stack / np.max(stack), axis=-1)
    model = build_model()
    return np.concatenate([model(stack[i : i + 32].astype(np.float32), training=False).numpy() for i in range(0, len(stack), 32)])


@pytest.mark.slow
def test_reference_mode_equals_the_published_pipeline(reference_result):
    expected = published_pipeline_features(PAT0001_LABELS)
    assert reference_result.features.shape == (240, 4096) == expected.shape
    assert reference_result.features.dtype == np.float32
    assert relative_difference(reference_result.features, expected) <= 1e-5


@pytest.mark.slow
def test_two_runs_give_identical_features(reference_result):
    again = extract_file(PAT0001_LABELS)
    assert np.array_equal(again.features, reference_result.features)
    assert np.array_equal(again.pooled, reference_result.pooled)


def test_foreground_rows_and_pooled_vector(reference_result):
    labels = nibabel.load(str(PAT0001_LABELS)).get_fdata()
    expected_rows = np.flatnonzero(labels.any(axis=(1, 2)))
    assert np.array_equal(reference_result.foreground_rows, expected_rows)
    tumour = reference_result.features[expected_rows]
    assert np.allclose(reference_result.pooled, np.concatenate([tumour.mean(axis=0), tumour.max(axis=0)]))
    assert reference_result.provenance["features"]["foreground_rows"] == expected_rows.tolist()


@pytest.mark.slow
def test_seg_nrrd_and_nifti_of_the_same_labels_give_the_same_features(tmp_path, reference_result):
    import slicerio

    image = nibabel.load(str(PAT0001_LABELS))
    labels = np.asarray(image.dataobj).astype(np.uint8)
    segmentation = slicerio.create_segmentation(labels.shape, np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine)
    for value in (1, 2, 3, 4):
        segmentation_added = slicerio.add_segment(segmentation, labels == value, {"name": f"label {value}"})
        assert segmentation_added["labelValue"] == value
    path = tmp_path / "pat0001.seg.nrrd"
    slicerio.write_segmentation(str(path), segmentation)
    from_nrrd = load_segmentation(path)
    assert np.array_equal(from_nrrd.data, labels)
    assert np.allclose(from_nrrd.affine, image.affine)
    assert np.array_equal(extract_file(path).features, reference_result.features)


def test_real_slicer_segmentation_keeps_its_label_values():
    volume = load_segmentation(SLICER_SEGMENTATION)
    assert volume.shape == (128, 128, 34)
    assert set(np.unique(volume.data).tolist()) == set(range(8))


def test_overlapping_segments_are_refused_clearly():
    with pytest.raises(DENError, match="SegmentationOverlapping.seg.nrrd: [0-9]+ voxels belong to two segments at once"):
        load_segmentation(SLICER_SEGMENTATION.with_name("SegmentationOverlapping.seg.nrrd"))


@pytest.mark.slow
def test_oriented_mode_does_not_depend_on_how_the_file_stores_its_axes(small_case):
    image = nibabel.load(str(small_case))
    labels = np.asarray(image.dataobj)
    flipped_affine = image.affine @ np.array([[-1, 0, 0, labels.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    stored = segmentation_from_array(labels, image.affine, "stored")
    flipped = segmentation_from_array(labels[::-1], flipped_affine, "flipped")
    for plane in ("axial", "coronal", "sagittal"):
        a = extract(stored, mode="oriented", plane=plane)
        b = extract(flipped, mode="oriented", plane=plane)
        assert np.array_equal(a.features, b.features), plane
    assert not np.array_equal(extract(stored).features, extract(flipped).features)  # reference mode follows storage


@pytest.mark.slow
def test_oriented_mode_records_plane_and_row_mapping(small_case):
    result = extract_file(small_case, mode="oriented", plane="coronal")
    recorded = result.provenance["preprocessing"]
    assert result.provenance["settings"]["plane"] == "coronal" and recorded["slice_axis_ras"] == "A"
    mapping = recorded["row_to_voxel_index"]
    assert len(mapping["indices"]) == result.features.shape[0] == 64
    # the synthetic case's affine flips j (LPS-like): row r (anterior-most last) is stored index 63 - r
    assert mapping["stored_axis"] == 1 and mapping["indices"][0] == 63


def test_oriented_resize_invents_no_label_values(small_case):
    from DENExtractorLib.extraction.preprocessing import preprocess

    stack = preprocess(load_segmentation(small_case), mode="oriented", plane="sagittal")
    assert set(np.unique(stack.resized).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert stack.divisor == 4.0


def test_oriented_mode_pads_anisotropic_slices_to_a_physical_square(tmp_path):
    labels = np.zeros((40, 40, 10), dtype=np.uint8)
    labels[10:30, 10:30, 2:8] = 1  # a 20x20x30 mm box on a 1x1x5 mm grid
    volume = segmentation_from_array(labels, np.diag([1.0, 1.0, 5.0, 1.0]), "box")
    from DENExtractorLib.extraction.preprocessing import preprocess

    stack = preprocess(volume, mode="oriented", plane="sagittal")
    picture = stack.resized[0] > 0
    rows, columns = np.flatnonzero(picture.any(axis=1)), np.flatnonzero(picture.any(axis=0))
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert abs(height / width - 30 / 20) < 0.1  # the box keeps its physical aspect, not its voxel aspect (6/20)


@pytest.mark.slow
def test_image_mode_normalisation_ignores_intensity_scale(tmp_path, small_case):
    image = nibabel.load(str(small_case))
    intensities = np.random.RandomState(0).normal(100, 20, size=image.shape).astype(np.float32)
    low = save_nifti(tmp_path / "low.nii.gz", intensities, image.affine)
    high = save_nifti(tmp_path / "high.nii.gz", intensities * 1000 + 3e4, image.affine)
    from_low = extract_file(small_case, image=low)
    from_high = extract_file(small_case, image=high)
    assert relative_difference(from_high.features, from_low.features) < 1e-4
    assert not np.allclose(from_low.features, extract_file(small_case).features)
    assert from_low.provenance["image"]["sha256"] is not None


@pytest.mark.slow
def test_image_mode_on_real_flair_in_both_modes(reference_result):
    for mode in ("reference", "oriented"):
        result = extract_file(PAT0001_LABELS, image=PAT0001_FLAIR, mode=mode)
        assert np.isfinite(result.features).all() and result.features.max() > 0
        assert result.provenance["preprocessing"]["input"].startswith("image intensities")


def test_image_on_another_grid_is_refused(tmp_path, small_case):
    image = nibabel.load(str(small_case))
    shifted_affine = image.affine.copy()
    shifted_affine[:3, 3] += 2.0
    shifted = save_nifti(tmp_path / "shifted.nii.gz", np.ones(image.shape, np.float32), shifted_affine)
    with pytest.raises(DENError, match="shifted.nii.gz: image affine differs"):
        extract_file(small_case, image=shifted)
    other_shape = save_nifti(tmp_path / "other.nii.gz", np.ones((10, 10, 10), np.float32), image.affine)
    with pytest.raises(DENError, match="other.nii.gz: image shape"):
        extract_file(small_case, image=other_shape)
