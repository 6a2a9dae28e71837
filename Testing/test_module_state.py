"""Tests of DENExtractorLib.module_state against real MRML nodes from the slicer-core package (no Qt, no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import slicer  # the slicer-core package: MRML nodes without the Slicer application
import vtk
from DENExtractorLib.module_state import chosen_path, inputs_problem, segment_ids_of


@pytest.fixture()
def scene():
    """A fresh MRML scene."""
    return slicer.vtkMRMLScene()


def _image_data(image_class=vtk.vtkImageData, dimensions=(4, 5, 6)):
    image = image_class()
    image.SetDimensions(*dimensions)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    return image


def add_segmentation(scene, name: str, segment_names: list[str]):
    """Add a segmentation node holding one binary-labelmap segment per name; return the node."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    for segment_name in segment_names:
        segment = slicer.vtkSegment()
        segment.SetName(segment_name)
        segment.AddRepresentation("Binary labelmap", _image_data(slicer.vtkOrientedImageData))
        assert node.GetSegmentation().AddSegment(segment, segment_name.lower())
    return node


def add_volume(scene, class_name: str, name: str, *, with_voxels: bool = True):
    """Add a volume node of ``class_name``, with a small image when ``with_voxels``; return the node."""
    node = scene.AddNewNodeByClass(class_name, name)
    if with_voxels:
        node.SetAndObserveImageData(_image_data())
    return node


def test_valid_segmentation_with_defaults(scene):
    segmentation = add_segmentation(scene, "tumour", ["Core", "Edema"])
    assert inputs_problem(segmentation, scene_has_url=True) is None
    assert segment_ids_of(segmentation) == ["core", "edema"]


def test_valid_label_map_with_image_and_folder(scene, tmp_path):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    image = add_volume(scene, "vtkMRMLScalarVolumeNode", "t1ce")
    assert inputs_problem(label_map, image, output_folder=tmp_path / "not-yet-created") is None
    assert segment_ids_of(label_map) == []


def test_missing_input(scene):
    assert inputs_problem(None) == "Select an input segmentation or label map."


def test_wrong_input_class(scene):
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "surface")
    assert inputs_problem(model) == "'surface' is neither a segmentation nor a label map volume."


def test_empty_segmentation(scene):
    segmentation = add_segmentation(scene, "empty", [])
    assert inputs_problem(segmentation) == "Segmentation 'empty' has no segments."


def test_segment_choice(scene):
    segmentation = add_segmentation(scene, "tumour", ["Core", "Edema"])
    assert inputs_problem(segmentation, segment_ids=["edema"], scene_has_url=True) is None
    assert inputs_problem(segmentation, segment_ids=[]) == "Select at least one segment."
    assert inputs_problem(segmentation, segment_ids=["core", "necrosis"]) == (
        "Segment 'necrosis' is not in segmentation 'tumour'."
    )


def test_segment_ids_ignored_for_label_map(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    assert inputs_problem(label_map, segment_ids=[], scene_has_url=True) is None


def test_label_map_without_voxels(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "blank", with_voxels=False)
    assert inputs_problem(label_map) == "Label map 'blank' has no voxels."


def test_image_problems(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    other_labels = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "other labels")
    blank_image = add_volume(scene, "vtkMRMLScalarVolumeNode", "blank", with_voxels=False)
    assert inputs_problem(label_map, other_labels) == (
        "Intensity volume 'other labels' must be a scalar volume, not a label map."
    )
    assert inputs_problem(label_map, blank_image) == "Intensity volume 'blank' has no voxels."


def test_image_must_differ_from_input(scene):
    volume = add_volume(scene, "vtkMRMLScalarVolumeNode", "t1ce")
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    assert inputs_problem(segmentation, volume, scene_has_url=True) is None
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    assert inputs_problem(label_map, label_map).startswith("Intensity volume 'labels' must be a scalar volume")


def test_weights_file_choice(scene, tmp_path):
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    weights = tmp_path / "den.weights.h5"
    weights.write_bytes(b"\x89HDF")
    assert inputs_problem(segmentation, use_bundled_weights=False, weights_path=weights, scene_has_url=True) is None
    absent = tmp_path / "absent.h5"
    assert inputs_problem(segmentation, use_bundled_weights=True, weights_path=absent, scene_has_url=True) is None
    assert inputs_problem(segmentation, use_bundled_weights=False, weights_path=Path()) == (
        "Choose a weights file, or use the bundled reference weights."
    )
    assert inputs_problem(segmentation, use_bundled_weights=False, weights_path=tmp_path / "absent.h5") == (
        f"Weights file not found: {tmp_path / 'absent.h5'}"
    )
    assert inputs_problem(segmentation, use_bundled_weights=False, weights_path=tmp_path) == (
        f"Weights path is not a file: {tmp_path}"
    )


def test_output_folder_needed_until_the_scene_is_saved(scene, tmp_path):
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    unsaved = "Choose an output folder: the scene has not been saved yet."
    assert inputs_problem(segmentation) == unsaved
    assert inputs_problem(segmentation, output_folder=Path()) == unsaved
    assert inputs_problem(segmentation, scene_has_url=True) is None
    assert inputs_problem(segmentation, output_folder=tmp_path) is None


def test_output_folder_that_is_a_file(scene, tmp_path):
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    assert inputs_problem(segmentation, output_folder=tmp_path) is None
    assert inputs_problem(segmentation, output_folder=a_file) == f"Output folder is a file: {a_file}"


@pytest.mark.parametrize("value", [None, "", "  ", ".", Path(), Path(".")])
def test_chosen_path_empty(value):
    assert chosen_path(value) is None


def test_chosen_path_value(tmp_path):
    assert chosen_path(str(tmp_path)) == tmp_path
    assert chosen_path(tmp_path / "out") == tmp_path / "out"
