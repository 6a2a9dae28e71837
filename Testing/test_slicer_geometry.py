"""One geometry rule, the one the user sees: segment subsets and parent transforms, with real MRML (slicer-core).

* A subset of a layered segmentation gives the label map ``den-extract --labels`` keeps from the saved
  ``.seg.nrrd``, before and after saving (BraTS pat0001 as four layers, every one of the 15 subsets);
* a parent transform (a 5 mm shift, a 90 degree rotation) gives, for a label map and a segmentation node and in
  reference, oriented and image mode, exactly what the hardened node gives, and the provenance records it.

What the worker receives is compared for every case (voxels and grid); features, for the cases the issue found
wrong, to the last bit.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import slicer
from DENExtractorLib import DENExtractor, ExtractionSettings, load_segmentation
from DENExtractorLib.volume import select_labels
from DENExtractorSlicer import background, case_files, process
from slicer.util import vtkMatrixFromArray
from slicer_helpers import (
    BRATS_FLAIR,
    BRATS_LABELS,
    exported,
    layered_segmentation,
    load_labelmap_node,
    load_scalar_node,
    load_segmentation_node,
    save_segmentation,
    segmentation_from_labelmap,
)

pytestmark = [pytest.mark.slicer, pytest.mark.needs_data, pytest.mark.slow]

SHIFT = np.array([[1, 0, 0, 5.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
"""5 mm to the left (R axis)."""

ROTATION = np.array([[0, -1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
"""90 degrees about the S axis."""


def assert_same_volume(actual, expected) -> None:
    np.testing.assert_array_equal(actual.data, expected.data)
    np.testing.assert_allclose(actual.affine, expected.affine, rtol=0, atol=1e-6)


@pytest.fixture(scope="module", autouse=True)
def worker_ended_after_the_module():
    yield
    background.stop_warm_worker()


@pytest.fixture(scope="module")
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture(scope="module")
def brats_labelmap(scene):
    return load_labelmap_node(scene, BRATS_LABELS, "OTMultiClass")


@pytest.fixture(scope="module")
def layered(scene, brats_labelmap):
    """BraTS pat0001 as four segments in four layers (each segment's label value 1 in its own layer)."""
    node = layered_segmentation(scene, brats_labelmap, "pat0001 layers")
    assert node.GetSegmentation().GetNumberOfLayers() == 4
    return node


@pytest.fixture(scope="module")
def saved(layered, tmp_path_factory):
    """The layered segmentation written as File > Save writes it."""
    return save_segmentation(layered, tmp_path_factory.mktemp("saved") / "pat0001_layers.seg.nrrd")


@pytest.fixture(scope="module")
def reloaded(scene, saved):
    """The saved file loaded again (the scene after File > Save and reopening)."""
    return load_segmentation_node(scene, saved, "pat0001 layers reloaded")


@pytest.fixture(scope="module")
def file_numbering(saved):
    """BraTS label -> the value that label's segment has in the saved file as the core reads it."""
    labels = load_segmentation(BRATS_LABELS).data
    file_data = load_segmentation(saved).data
    numbering = {}
    for label in (1, 2, 3, 4):
        values = np.unique(file_data[labels == label])
        assert len(values) == 1
        numbering[label] = int(values[0])
    return numbering


def ids_of(node, labels) -> list[str]:
    segmentation = node.GetSegmentation()
    by_name = {segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegmentID(i)
               for i in range(segmentation.GetNumberOfSegments())}
    return [by_name[f"label{label}"] for label in labels]


SUBSETS = [subset for size in range(1, 5) for subset in itertools.combinations((1, 2, 3, 4), size)]


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda subset: "+".join(map(str, subset)))
def test_every_subset_is_numbered_as_the_saved_file(subset, layered, reloaded, saved, file_numbering):
    expected = select_labels(load_segmentation(saved), [file_numbering[label] for label in subset])
    for node in (layered, reloaded):  # before and after File > Save
        volume, _image, record = exported(node, ids_of(node, subset))
        assert_same_volume(volume, expected)
        assert [entry["value"] for entry in record["segments"]] == [file_numbering[label] for label in subset]


def test_a_subset_gives_den_extract_labels_features_before_and_after_saving(layered, reloaded, saved, file_numbering,
                                                                             tmp_path):
    subset = (2, 4)
    labels = tuple(file_numbering[label] for label in subset)
    expected = DENExtractor(ExtractionSettings(labels=labels)).extract_file(saved).features
    for node in (layered, reloaded):
        outcome = process(node, segment_ids=ids_of(node, subset), output_folder=tmp_path)
        assert float(np.max(np.abs(outcome.result.features - expected))) == 0.0


# --- parent transforms ----------------------------------------------------------------------------------------


def fresh_input(scene, kind: str, name: str):
    labelmap = load_labelmap_node(scene, BRATS_LABELS, name)
    if kind == "labelmap":
        return labelmap
    return segmentation_from_labelmap(scene, labelmap, name + " segmentation")


def under(scene, nodes, matrix, name: str):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    transform.SetMatrixTransformToParent(vtkMatrixFromArray(matrix))
    for node in nodes:
        node.SetAndObserveTransformNodeID(transform.GetID())
    return transform


def transformed_and_hardened(scene, kind: str, matrix, image_mode: bool):
    """(input, MRI or None) under the transform, and the same nodes loaded again with it hardened."""
    pairs = []
    for hardened in (False, True):
        node = fresh_input(scene, kind, f"{kind} {'hardened' if hardened else 'moved'}")
        image = load_scalar_node(scene, BRATS_FLAIR, "Flair") if image_mode else None
        under(scene, [n for n in (node, image) if n is not None], matrix, "shift or rotation")
        if hardened:
            for item in (node, image):
                if item is not None:
                    assert item.HardenTransform() and item.GetParentTransformNode() is None
        pairs.append((node, image))
    return pairs


@pytest.mark.parametrize("matrix", [SHIFT, ROTATION], ids=["5 mm shift", "90 degree rotation"])
@pytest.mark.parametrize("kind", ["labelmap", "segmentation"])
@pytest.mark.parametrize("image_mode", [False, True], ids=["labels", "image mode"])
def test_a_parent_transform_is_the_hardened_node(scene, matrix, kind, image_mode):
    (moved, moved_image), (hardened, hardened_image) = transformed_and_hardened(scene, kind, matrix, image_mode)
    volume, image, record = exported(moved, None, moved_image)
    expected, expected_image, _ = exported(hardened, None, hardened_image)
    assert_same_volume(volume, expected)
    if image_mode:
        assert_same_volume(image, expected_image)
        assert record["image_transform"]["matrix_to_world"] == matrix.tolist()
    assert record["input_transform"] == {"name": "shift or rotation", "matrix_to_world": matrix.tolist()}
    for node in (moved, moved_image, hardened, hardened_image):
        if node is not None:
            scene.RemoveNode(node)


@pytest.mark.parametrize("kind", ["labelmap", "segmentation"])
def test_a_rotated_node_gives_the_hardened_nodes_features_in_oriented_mode(scene, kind, tmp_path):
    (moved, _), (hardened, _) = transformed_and_hardened(scene, kind, ROTATION, image_mode=False)
    outcome = process(moved, mode="oriented", plane="axial", output_folder=tmp_path / "moved")
    expected = process(hardened, mode="oriented", plane="axial", output_folder=tmp_path / "hardened")
    assert float(np.max(np.abs(outcome.result.features - expected.result.features))) == 0.0
    transform = outcome.result.provenance["slicer"]["input_transform"]
    assert transform["matrix_to_world"] == ROTATION.tolist()
    unrotated = process(fresh_input(scene, kind, "not rotated"), mode="oriented", plane="axial",
                        output_folder=tmp_path / "plain")
    assert unrotated.result.features.shape != outcome.result.features.shape or not np.array_equal(
        unrotated.result.features, outcome.result.features
    )  # the rotation is applied: an axial plane of the rotated head is not the unrotated one's


def test_a_segmentation_off_the_mris_grid_is_refused_with_a_clear_message(scene):
    node = fresh_input(scene, "segmentation", "off grid")
    flair = load_scalar_node(scene, BRATS_FLAIR, "Flair")
    under(scene, [node], ROTATION, "rotation of the segmentation only")
    with pytest.raises(Exception, match="not on the voxel grid of 'Flair'"):
        exported(node, None, flair)
    shifted = fresh_input(scene, "labelmap", "far away")
    far = np.eye(4)
    far[:3, 3] = (1000.0, 0, 0)
    under(scene, [shifted], far, "1 m away")
    with pytest.raises(Exception, match="outside the MRI"):
        exported(shifted, None, flair)


# --- closed surfaces (imported models) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_surfaces(scene, brats_labelmap):
    """BraTS pat0001's four segments as closed surfaces only, without a reference geometry (as imported models).

    The application's Segmentations module registers the conversion rules at start-up; slicer-core does not.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    node = segmentation_from_labelmap(scene, brats_labelmap, "models")
    segmentation = node.GetSegmentation()
    assert segmentation.CreateRepresentation("Closed surface")
    segmentation.SetSourceRepresentationName("Closed surface")
    segmentation.RemoveRepresentation("Binary labelmap")
    segmentation.SetConversionParameter("Reference image geometry", "")
    assert not segmentation.ContainsRepresentation("Binary labelmap")
    return node


def test_closed_surfaces_are_converted_on_a_copy_onto_the_mris_grid(scene, closed_surfaces):
    flair = load_scalar_node(scene, BRATS_FLAIR, "Flair for surfaces")
    volume, image, record = exported(closed_surfaces, None, flair)
    assert volume.data.shape == image.data.shape == (240, 240, 155)
    np.testing.assert_allclose(volume.affine, image.affine, atol=1e-6)
    labels = load_segmentation(BRATS_LABELS).data
    assert set(np.unique(volume.data)) == {0, 1, 2, 3, 4}
    for label in (1, 2, 4):  # the surfaces are the original regions, smoothed: large regions keep their voxels
        ours, original = volume.data == label, labels == label
        assert 2 * np.count_nonzero(ours & original) / (ours.sum() + original.sum()) > 0.9
    assert record["overlapping_voxels_given_to_the_later_segment"] > 0  # adjacent surfaces: not refused
    assert not closed_surfaces.GetSegmentation().ContainsRepresentation("Binary labelmap")  # the node is untouched


def test_closed_surfaces_without_a_grid_are_refused_and_left_alone(closed_surfaces):
    with pytest.raises(Exception, match="closed surfaces without a voxel grid: choose the MRI"):
        exported(closed_surfaces)
    assert not closed_surfaces.GetSegmentation().ContainsRepresentation("Binary labelmap")


# --- placing layers on the grid (the worker's side) ------------------------------------------------------------


def test_a_layer_is_placed_by_whole_voxels_only():
    grid = np.diag([2.0, 2.0, 3.0, 1.0])
    moved = grid.copy()
    moved[:3, 3] = (4.0, -2.0, 9.0)
    assert case_files.grid_offset(grid, moved) == (2, -1, 3)
    moved[0, 3] = 5.0  # half a voxel
    assert case_files.grid_offset(grid, moved) is None
    assert case_files.grid_offset(grid, grid @ ROTATION) is None
    assert case_files.grid_offset(grid, np.diag([1.0, 2.0, 3.0, 1.0])) is None  # another spacing


def test_a_layer_beyond_the_reference_grid_is_cut_there_but_refused_by_an_mri():
    layer = np.ones((4, 4, 4), dtype=np.uint8)
    offset = np.eye(4)
    offset[:3, 3] = (8.0, 0.0, 0.0)  # half of it beyond the 10-voxel grid
    entries = [(layer, offset, [case_files.LayerSegment(1, 3)])]
    merged, overlapping = case_files.place_layers((10, 10, 10), np.eye(4), entries, "layer", strict=False)
    assert overlapping == 0 and merged.dtype == np.int16
    assert np.count_nonzero(merged) == 2 * 4 * 4 and set(np.unique(merged)) == {0, 3}
    with pytest.raises(Exception, match="outside the MRI"):
        case_files.place_layers((10, 10, 10), np.eye(4), entries, "layer", strict=True)
