"""Tests of DENExtractorSlicer.checks, the one rule for "can extraction start", against real MRML nodes (slicer-core).

The run raises the problem these checks find and the module's status line shows the same text: the tests here
check the messages, test_slicer_process.py checks that process() refuses with them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import slicer  # the slicer-core package: MRML nodes without the Slicer application
import vtk
from DENExtractorLib import DENError, ExtractionSettings
from DENExtractorLib.network import weights_files
from DENExtractorSlicer.checks import (
    chosen_path,
    inputs_problem,
    segment_ids_of,
    segments_after_adding,
    segments_to_choose,
)
from helpers import den_weights_h5

pytestmark = [pytest.mark.slicer]


@pytest.fixture()
def scene():
    """A fresh MRML scene."""
    return slicer.vtkMRMLScene()


def message(problem) -> str | None:
    """The status-line text of a problem (None when there is none)."""
    return None if problem is None else str(problem)


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
    assert message(inputs_problem(None)) == "input: choose a segmentation or a label map volume"


def test_wrong_input_class(scene):
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "surface")
    assert message(inputs_problem(model)) == (
        "surface: neither a segmentation nor a label map volume: choose one of those"
    )


def test_empty_segmentation(scene):
    segmentation = add_segmentation(scene, "empty", [])
    assert message(inputs_problem(segmentation)) == "empty: the segmentation has no segments"


def test_segment_choice(scene):
    segmentation = add_segmentation(scene, "tumour", ["Core", "Edema"])
    assert inputs_problem(segmentation, segment_ids=["edema"], scene_has_url=True) is None
    assert message(inputs_problem(segmentation, segment_ids=[])) == (
        "tumour: no segment chosen: choose at least one segment"
    )
    assert message(inputs_problem(segmentation, segment_ids=["core", "necrosis"])) == (
        "tumour: no segment with ID 'necrosis' in this segmentation"
    )


def test_segment_ids_ignored_for_label_map(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    assert inputs_problem(label_map, segment_ids=[], scene_has_url=True) is None


def test_label_map_without_voxels(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "blank", with_voxels=False)
    assert message(inputs_problem(label_map)) == "blank: the label map has no voxels"


def test_image_problems(scene):
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    other_labels = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "other labels")
    blank_image = add_volume(scene, "vtkMRMLScalarVolumeNode", "blank", with_voxels=False)
    assert message(inputs_problem(label_map, other_labels)) == (
        "other labels: the intensity volume must be a scalar volume, not a label map"
    )
    assert message(inputs_problem(label_map, blank_image)) == "blank: the intensity volume has no voxels"


def test_image_must_differ_from_input(scene):
    volume = add_volume(scene, "vtkMRMLScalarVolumeNode", "t1ce")
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    assert inputs_problem(segmentation, volume, scene_has_url=True) is None
    label_map = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    assert message(inputs_problem(label_map, label_map)) == (
        "labels: the intensity volume must be a scalar volume, not a label map"
    )


def test_weights_file_choice(scene, tmp_path):
    """A chosen weights file gets the core's own check: the status line says what den-extract --weights would."""
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    not_weights = tmp_path / "den.weights.h5"
    not_weights.write_bytes(b"\x89HDF not really")
    absent = tmp_path / "absent.h5"
    assert inputs_problem(segmentation, use_bundled_weights=True, weights_path=absent, scene_has_url=True) is None
    assert message(inputs_problem(segmentation, use_bundled_weights=False, weights_path=Path())) == (
        "weights: choose a weights file, or use the bundled reference weights"
    )
    for path in (absent, tmp_path, not_weights):
        problem = inputs_problem(segmentation, use_bundled_weights=False, weights_path=path, scene_has_url=True)
        with pytest.raises(DENError) as core_refusal:
            ExtractionSettings(weights=path)
        assert message(problem) == str(core_refusal.value)
    assert message(inputs_problem(segmentation, use_bundled_weights=False, weights_path=absent)) == (
        f"{absent}: no such weights file"
    )


def test_a_chosen_weights_file_is_read_once_on_slicers_main_thread_until_it_changes(scene, tmp_path, monkeypatch):
    """The panel checks the chosen weights at every parameter change and the click makes its settings: Slicer's
    main thread reads a 122 MB file once for all of them (about 50-130 ms here), and again only once it is
    rewritten, when the rewritten file's fault reaches the status line."""
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    reads: list[Path] = []
    read_values = weights_files._check_h5_shapes

    def counted(path, source=None):
        reads.append(path)
        return read_values(path, source)

    monkeypatch.setattr(weights_files, "_check_h5_shapes", counted)
    chosen = den_weights_h5(tmp_path / "mine.weights.h5")
    for _ in range(3):  # parameter changes, then the click's own check
        assert inputs_problem(segmentation, use_bundled_weights=False, weights_path=chosen, scene_has_url=True) is None
    assert ExtractionSettings(mode="oriented", weights=chosen).weights == chosen  # the click's settings
    assert reads == [chosen]
    os.replace(den_weights_h5(tmp_path / "retrained.weights.h5", bad_value=np.nan), chosen)
    assert message(inputs_problem(segmentation, use_bundled_weights=False, weights_path=chosen, scene_has_url=True)) == (
        f"{chosen}: cannot load these weights into DEN: 1 weight values are NaN or infinite: these weights cannot give "
        "meaningful features"
    )
    assert reads == [chosen, chosen]


def test_output_folder_needed_until_the_scene_is_saved(scene, tmp_path):
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    unsaved = "output folder: the scene has not been saved and no output folder was chosen: choose one"
    assert message(inputs_problem(segmentation)) == unsaved
    assert message(inputs_problem(segmentation, output_folder=Path())) == unsaved
    assert inputs_problem(segmentation, scene_has_url=True) is None
    assert inputs_problem(segmentation, output_folder=tmp_path) is None


def test_output_folder_that_is_a_file(scene, tmp_path):
    segmentation = add_segmentation(scene, "tumour", ["Core"])
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    assert inputs_problem(segmentation, output_folder=tmp_path) is None
    assert message(inputs_problem(segmentation, output_folder=a_file)) == f"{a_file}: the output folder is a file"


@pytest.mark.parametrize("value", [None, "", "  ", ".", Path(), Path(".")])
def test_chosen_path_empty(value):
    assert chosen_path(value) is None


def test_chosen_path_value(tmp_path):
    assert chosen_path(str(tmp_path)) == tmp_path
    assert chosen_path(tmp_path / "out") == tmp_path / "out"


def test_a_new_input_gets_its_own_segments(scene):
    """Choosing another segmentation lists and chooses that segmentation's segments, never the old one's."""
    first = add_segmentation(scene, "first", ["Core", "Edema"])
    second = add_segmentation(scene, "second", ["Necrosis", "Enhancing"])
    shared = add_segmentation(scene, "shared", ["Core", "Rim"])
    assert segments_to_choose(first, []) == ["core", "edema"]
    assert segments_to_choose(second, ["edema"]) == ["necrosis", "enhancing"]  # old choice absent: all segments
    assert segments_to_choose(shared, ["edema", "core"]) == ["core"]  # what still exists is kept
    labels = add_volume(scene, "vtkMRMLLabelMapVolumeNode", "labels")
    assert segments_to_choose(labels, ["core"]) == []
    assert segments_to_choose(None, ["core"]) == []


def test_a_segment_added_after_choosing_is_chosen_too(scene):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn")
    segmentation = node.GetSegmentation()

    def add(name: str) -> None:
        segment = slicer.vtkSegment()
        segment.SetName(name)
        segment.AddRepresentation("Binary labelmap", slicer.vtkOrientedImageData())
        assert segmentation.AddSegment(segment, name)

    for name in ("a", "b", "c"):
        add(name)
    known = segment_ids_of(node)
    add("d")
    assert segments_after_adding(node, known, ["a", "c"]) == ["a", "c", "d"]
    assert segments_after_adding(node, segment_ids_of(node), ["a"]) == ["a"]  # nothing new: the choice stays


def test_oriented_mode_scales_labels_by_the_whole_segmentations_segment_count():
    from DENExtractorSlicer.runs import settings_for

    assert settings_for("oriented", "axial", None, largest_label=7).record()["label_max"] == 7.0
    assert settings_for("oriented", "axial", None, largest_label=3).record()["label_max"] == 4.0  # BraTS' own scale
    assert settings_for("oriented", "axial", None).record()["label_max"] == 4.0
    assert settings_for("reference", "axial", None, largest_label=7).record()["label_max"] is None


def test_the_label_scale_is_a_segmentations_segment_count_and_a_label_maps_largest_value_found_by_the_worker():
    """Slicer's main thread never scans a label map's voxels: the worker finds its largest label (max(4, it))."""
    from DENExtractorSlicer.case_files import LARGEST_LABEL, oriented_label_max
    from DENExtractorSlicer.runs import label_scale_of
    from slicer.util import updateVolumeFromArray

    scene = slicer.vtkMRMLScene()
    label_map = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    voxels = np.zeros((4, 5, 6), dtype=np.int16)
    voxels[1, 2, 3], voxels[2, 2, 2] = 7, 2
    updateVolumeFromArray(label_map, voxels)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    for name in ("a", "b", "c"):
        segment = slicer.vtkSegment()
        segment.AddRepresentation("Binary labelmap", slicer.vtkOrientedImageData())
        assert segmentation.GetSegmentation().AddSegment(segment, name)
    assert label_scale_of(label_map) == LARGEST_LABEL
    assert label_scale_of(segmentation) == 3
    assert oriented_label_max(float(voxels.max())) == 7.0
    assert oriented_label_max(3.0) is None  # the default scale, 4
    assert oriented_label_max(None) is None


@pytest.mark.parametrize("kind", ["label map", "segmentation"])
def test_an_input_off_the_mris_voxel_grid_disables_extract_before_the_click_with_one_message(scene, kind):
    """Image mode needs the input on the MRI's voxel grid: a label map and a segmentation half a voxel off it get
    the same message from the status line's check, before anything is exported or sent to the worker; on the grid
    (a whole-voxel offset, a box of it) both are accepted."""
    from slicer.util import updateVolumeFromArray, vtkMatrixFromArray
    from slicer_helpers import segmentation_from_labelmap

    def volume(node_class: str, name: str, shift: float):
        node = scene.AddNewNodeByClass(node_class, name)
        voxels = np.zeros((6, 8, 10), dtype=np.int16)
        voxels[2:4, 3:5, 4:6] = 1
        updateVolumeFromArray(node, voxels)
        affine = np.diag([2.0, 2.0, 3.0, 1.0])
        affine[0, 3] = shift
        node.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
        return node

    mri = volume("vtkMRMLScalarVolumeNode", "MRI", 0.0)
    on_grid = volume("vtkMRMLLabelMapVolumeNode", "on grid", 4.0)  # two whole voxels along i
    off_grid = volume("vtkMRMLLabelMapVolumeNode", "off grid", 1.0)  # half a voxel
    if kind == "segmentation":
        on_grid = segmentation_from_labelmap(scene, on_grid, "on grid segments")
        off_grid = segmentation_from_labelmap(scene, off_grid, "off grid segments")
    folder = Path("/tmp")
    assert inputs_problem(on_grid, mri, output_folder=folder) is None
    assert message(inputs_problem(off_grid, mri, output_folder=folder)) == (
        f"{off_grid.GetName()}: the segmentation is not on the voxel grid of 'MRI': choose the MRI it was drawn on "
        "(or resample one onto the other)")
    assert inputs_problem(off_grid, None, output_folder=folder) is None  # label mode: any grid
