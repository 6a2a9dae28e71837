"""Tests of DENExtractorSlicer with real MRML nodes (slicer-core) and real files: no Qt, no mocks.

The central check: a file loaded into Slicer gives the same features as ``den-extract`` (``extract_file``) on that
file, to the last bit. Extractions take seconds each, so results are shared through module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import slicer  # the slicer-core package: MRML nodes without the Slicer application
import vtk
from DENExtractorLib import (
    FEATURE_COUNT,
    DENError,
    DENExtractor,
    ExtractionCancelled,
    ExtractionSettings,
    load_image,
    load_segmentation,
    segmentation_from_array,
)
from DENExtractorLib.demo import synthetic_glioblastoma
from DENExtractorSlicer import background, nodes, process, results, views
from DENExtractorSlicer.runs import output_stem, result_stem, scene_output_folder
from DENExtractorSlicer.sample import SEGMENTS, add_sample_segmentation
from DENExtractorSlicer.worker import Worker
from PIL import Image
from slicer.util import arrayFromVolume
from slicer_helpers import (
    BRATS_FLAIR,
    BRATS_LABELS,
    SEG_NRRD,
    SEG_NRRD_OVERLAPPING,
    exported,
    load_labelmap_node,
    load_scalar_node,
    load_segmentation_node,
    render_chart,
    render_red_view,
    segment_ids_by_label,
    segmentation_from_labelmap,
)

pytestmark = [pytest.mark.slicer, pytest.mark.needs_data, pytest.mark.slow]

GOLDEN_FILE = Path(__file__).resolve().parents[1] / "DENExtractor" / "Resources" / "golden_features.json"
"""The pinned values the module's self-test (DENExtractorTest) checks inside Slicer."""


def assert_same_features(actual: np.ndarray, expected: np.ndarray) -> None:
    """Features agree to the last bit (max difference 0): Slicer and den-extract feed the network the same arrays."""
    assert actual.shape == expected.shape
    assert float(np.max(np.abs(actual - expected))) == 0.0


def node_ids(scene) -> set[str]:
    return {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}


# --- shared scene, nodes and extractions ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene():
    """One MRML scene for the module."""
    return slicer.vtkMRMLScene()


@pytest.fixture(scope="module")
def brats_labelmap(scene):
    """The BraTS label map (float32 labels 0..4) loaded as a label map volume node."""
    return load_labelmap_node(scene, BRATS_LABELS, "OTMultiClass")


@pytest.fixture(scope="module")
def brats_segmentation(scene, brats_labelmap):
    """The BraTS label map converted into a segmentation node (four segments, label values 1..4)."""
    return segmentation_from_labelmap(scene, brats_labelmap, "OTMultiClass segmentation")


@pytest.fixture(scope="module", autouse=True)
def worker_ended_after_the_module():
    """process() runs in the kept worker process; end it with the module."""
    yield
    background.stop_warm_worker()


@pytest.fixture(scope="module")
def slicer_extractor(reference_extractor):
    """The core's extractor in this process, for references: what den-extract computes from the files."""
    return reference_extractor


@pytest.fixture(scope="module")
def brats_reference(reference_result):
    """The command line's result on the BraTS file."""
    return reference_result


@pytest.fixture(scope="module")
def scene_folder(scene, tmp_path_factory):
    """A folder holding the saved scene: results of runs without an output folder land here."""
    folder = tmp_path_factory.mktemp("saved_scene")
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()
    return folder


@pytest.fixture(scope="module")
def brats_outcome(scene_folder, brats_segmentation):
    """``process`` on the BraTS segmentation node, writing next to the saved scene."""
    return process(brats_segmentation)


@pytest.fixture(scope="module")
def seg_nrrd_node(scene):
    """The slicerio ``.seg.nrrd`` (7 segments, labels 1..7, cropped extent) loaded as a segmentation node."""
    return load_segmentation_node(scene, SEG_NRRD, "Segmentation")


# --- nodes to what the worker receives (no network) -----------------------------------------------------------


def test_labelmap_node_gives_the_file_arrays(brats_labelmap):
    volume = exported(brats_labelmap)[0]
    expected = load_segmentation(BRATS_LABELS)
    assert volume.data.shape == (240, 240, 155)
    np.testing.assert_array_equal(volume.data, expected.data)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-6)
    assert volume.source == "OTMultiClass"


def test_segmentation_node_keeps_label_values_and_grid(brats_segmentation):
    volume = exported(brats_segmentation)[0]
    expected = load_segmentation(BRATS_LABELS)
    np.testing.assert_array_equal(volume.data, expected.data)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-6)


def test_segment_subset_keeps_only_the_chosen_labels(brats_segmentation):
    ids = segment_ids_by_label(brats_segmentation)
    volume = exported(brats_segmentation, [ids[4], ids[2]])[0]
    labels = load_segmentation(BRATS_LABELS).data
    assert set(np.unique(volume.data)) == {0, 2, 4}
    np.testing.assert_array_equal(volume.data, np.where(np.isin(labels, [2, 4]), labels, 0))
    assert "segments:" in volume.source


def test_the_mri_sets_the_grid_of_a_segmentation_without_one(scene, brats_labelmap):
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "no reference geometry")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(brats_labelmap, segmentation_node)
    cropped = exported(segmentation_node)[0]
    assert cropped.data.shape != (240, 240, 155)  # without a reference grid: the box around the segments
    flair = load_scalar_node(scene, BRATS_FLAIR, "Flair as the grid")
    volume = exported(segmentation_node, None, flair)[0]
    np.testing.assert_array_equal(volume.data, load_segmentation(BRATS_LABELS).data)
    scene.RemoveNode(segmentation_node)


def test_seg_nrrd_node_matches_the_core_reader(seg_nrrd_node):
    volume = exported(seg_nrrd_node)[0]
    expected = load_segmentation(SEG_NRRD)
    assert volume.data.shape == expected.data.shape == (128, 128, 34)
    np.testing.assert_array_equal(volume.data, expected.data)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-4)


def test_seg_nrrd_subset_is_not_renumbered(seg_nrrd_node):
    segmentation = seg_nrrd_node.GetSegmentation()
    chosen = [segmentation.GetNthSegmentID(index) for index in (2, 3, 4)]
    volume = exported(seg_nrrd_node, chosen)[0]
    labels = load_segmentation(SEG_NRRD).data
    assert nodes.segment_label_values(seg_nrrd_node, chosen) == [3, 4, 5]
    np.testing.assert_array_equal(volume.data, np.where(np.isin(labels, [3, 4, 5]), labels, 0))


def test_overlapping_layers_are_refused_like_the_command_line(scene):
    node = load_segmentation_node(scene, SEG_NRRD_OVERLAPPING, "overlapping")
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]
    assert nodes.segment_label_values(node, ids) == list(range(1, 9))  # the sphere's 1 is taken: it gets 8
    with pytest.raises(DENError, match="overlapping layers"):
        exported(node)
    with pytest.raises(DENError):
        load_segmentation(SEG_NRRD_OVERLAPPING)
    sphere_only = exported(node, ids[-1:])[0]
    assert set(np.unique(sphere_only.data)) == {0, 8}  # numbered as in the whole segmentation


def test_empty_segment_in_another_layer_changes_nothing(scene, brats_labelmap):
    node = segmentation_from_labelmap(scene, brats_labelmap, "with an empty layer")
    empty = slicer.vtkSegment()
    empty.SetName("not drawn yet")
    empty.AddRepresentation("Binary labelmap", slicer.vtkOrientedImageData())
    segmentation = node.GetSegmentation()
    assert segmentation.AddSegment(empty, "empty")
    assert segmentation.GetNumberOfLayers() == 2 and empty.GetLabelValue() == 1
    ids = [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]
    assert nodes.segment_label_values(node, ids) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(
        exported(node)[0].data, load_segmentation(BRATS_LABELS).data
    )
    with pytest.raises(DENError, match="empty"):
        exported(node, ["empty"])
    scene.RemoveNode(node)


@pytest.mark.parametrize(
    ("segment_ids", "message"), [([], "no segment chosen"), (["nonexistent"], "no segment with ID")]
)
def test_bad_segment_choice_is_refused(brats_segmentation, segment_ids, message):
    with pytest.raises(DENError, match=message):
        exported(brats_segmentation, segment_ids)


def test_scalar_node_gives_the_file_arrays(scene, brats_labelmap):
    node = load_scalar_node(scene, BRATS_FLAIR, "Flair")
    volume = exported(brats_labelmap, None, node)[1]
    expected = load_image(BRATS_FLAIR)
    np.testing.assert_array_equal(volume.data, expected.data)
    np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-6)


# --- output folder ----------------------------------------------------------------------------------------------


def test_output_folder_is_the_chosen_one_else_the_saved_scenes(tmp_path):
    scene = slicer.vtkMRMLScene()
    with pytest.raises(DENError, match="no output folder was chosen"):
        scene_output_folder(scene, None)
    with pytest.raises(DENError):
        scene_output_folder(scene, "")
    assert scene_output_folder(scene, str(tmp_path)) == tmp_path
    scene.SetURL(str(tmp_path / "project" / "scene.mrml"))
    assert scene_output_folder(scene, None) == (tmp_path / "project").resolve()
    assert scene_output_folder(scene, tmp_path / "chosen") == tmp_path / "chosen"


def test_unsaved_scene_without_folder_fails_before_extracting(brats_labelmap):
    scene = slicer.vtkMRMLScene()
    with pytest.raises(DENError, match="no output folder was chosen"):
        process(brats_labelmap, scene=scene, cancel=pytest.fail)  # fails the test if it extracts
    assert scene.GetNumberOfNodes() == 0


def test_a_scene_never_saved_writes_under_the_default_scene_path(tmp_path):
    scene = slicer.vtkMRMLScene()
    assert scene_output_folder(scene, None, tmp_path / "Slicer") == tmp_path / "Slicer" / "DENExtractor"
    node = add_sample_segmentation(scene, shape=(48, 40, 24))
    outcome = process(node, scene=scene, default_folder=tmp_path / "Slicer")
    assert outcome.paths["npy"].parent == tmp_path / "Slicer" / "DENExtractor"
    assert all(path.is_file() for path in outcome.paths.values())


def test_the_run_refuses_with_the_status_lines_message(scene, brats_segmentation, brats_labelmap, tmp_path):
    """One rule: process() raises exactly the problem the module's status line shows, before extracting."""
    from DENExtractorSlicer.checks import inputs_problem

    cases = [
        ({"segment_ids": []}, {"segment_ids": []}),
        ({"segment_ids": ["nonexistent"]}, {"segment_ids": ["nonexistent"]}),
        ({"weights": tmp_path / "absent.weights.h5"}, {"use_bundled_weights": False,
                                                       "weights_path": tmp_path / "absent.weights.h5"}),
        ({"image_node": brats_labelmap}, {}),
    ]
    for run_options, check_options in cases:
        image = run_options.get("image_node")
        expected = inputs_problem(brats_segmentation, image, scene_has_url=True, **check_options)
        assert expected is not None
        with pytest.raises(DENError) as refusal:
            process(brats_segmentation, cancel=pytest.fail, **run_options)
        assert str(refusal.value) == str(expected)


def test_output_stem_is_a_safe_file_name():
    assert output_stem("OTMultiClass") == "OTMultiClass"
    assert output_stem("pat 1/OT: labels") == "pat_1_OT_labels"
    assert output_stem("..") == "segmentation"


def test_file_names_say_what_differs(brats_segmentation, brats_labelmap, scene):
    ids = segment_ids_by_label(brats_segmentation)
    flair = scene.GetFirstNodeByName("Flair") or load_scalar_node(scene, BRATS_FLAIR, "Flair")
    stems = {
        result_stem(brats_segmentation),
        result_stem(brats_segmentation, [ids[1], ids[4]]),
        result_stem(brats_segmentation, None, flair),
        result_stem(brats_segmentation, None, None, "oriented", "axial"),
        result_stem(brats_segmentation, None, None, "oriented", "coronal"),
        result_stem(brats_segmentation, None, None, "reference", None, Path("den_trained.weights.h5")),
    }
    assert len(stems) == 6
    subset_stem = result_stem(brats_segmentation, [ids[1], ids[4]])
    assert subset_stem == "OTMultiClass_segmentation_seg-Label_1+Label_4_reference"
    assert result_stem(brats_labelmap, None, flair, "oriented", "coronal") == "OTMultiClass_Flair_oriented-coronal"
    assert len(result_stem(brats_segmentation, [ids[1]] * 60)) <= 120


# --- process: features, files and nodes -------------------------------------------------------------------------


def test_process_gives_the_command_line_features(brats_outcome, brats_reference):
    assert_same_features(brats_outcome.result.features, brats_reference.features)
    np.testing.assert_array_equal(brats_outcome.result.foreground_rows, brats_reference.foreground_rows)
    np.testing.assert_allclose(brats_outcome.result.pooled, brats_reference.pooled, rtol=0, atol=1e-6)


def test_outputs_land_next_to_the_saved_scene(brats_outcome, scene_folder):
    paths = brats_outcome.paths
    assert paths["npy"] == scene_folder / "OTMultiClass_segmentation_reference_den.npy"
    assert {path.parent for path in paths.values()} == {scene_folder}
    np.testing.assert_array_equal(np.load(paths["npy"]), brats_outcome.result.features)
    provenance = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert provenance["input"]["source"] == "OTMultiClass segmentation"
    assert provenance["slicer"]["node"] == "OTMultiClass segmentation"
    assert provenance["slicer"]["input_transform"] is None
    assert [entry["value"] for entry in provenance["slicer"]["segments"]] == [1, 2, 3, 4]
    assert paths["png"].stat().st_size > 0


def test_per_slice_table_is_a_summary_not_the_matrix(brats_outcome):
    table = brats_outcome.nodes.table
    features = brats_outcome.result.features
    most_variable = int(np.argmax(features.var(axis=0)))
    assert table.GetNumberOfRows() == features.shape[0] == 240
    assert table.GetNumberOfColumns() == 4  # the full 240 x 4096 matrix stays in the .npy
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "slice"), np.arange(240))
    foreground = slicer.util.arrayFromTableColumn(table, "foreground")
    np.testing.assert_array_equal(np.flatnonzero(foreground), brats_outcome.result.foreground_rows)
    mean = slicer.util.arrayFromTableColumn(table, "mean activation")
    np.testing.assert_allclose(mean, features.mean(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(
        slicer.util.arrayFromTableColumn(table, f"feature_{most_variable}"), features[:, most_variable]
    )


def test_a_rerun_replaces_its_nodes_and_runs_that_differ_keep_their_files(scene, brats_labelmap, tmp_path):
    first = process(brats_labelmap, output_folder=tmp_path)
    count = scene.GetNumberOfNodes()
    again = process(brats_labelmap, output_folder=tmp_path)
    assert scene.GetNumberOfNodes() == count  # one set of result nodes per input
    assert scene.GetNodeByID(first.nodes.heatmap.GetID()) is None
    assert again.paths == first.paths
    oriented = process(brats_labelmap, output_folder=tmp_path, mode="oriented")
    assert oriented.paths["npy"] != again.paths["npy"]
    assert all(path.is_file() for path in [*again.paths.values(), *oriented.paths.values()])
    assert not np.array_equal(np.load(again.paths["npy"]), np.load(oriented.paths["npy"]))


def test_the_heatmap_is_not_offered_as_an_mri(brats_outcome, brats_segmentation):
    from DENExtractorSlicer.checks import image_problem

    heatmap = brats_outcome.nodes.heatmap
    assert heatmap.GetAttribute(results.ROLE_ATTRIBUTE) == results.HEATMAP_ROLE
    assert "heatmap" in str(image_problem(heatmap, brats_segmentation))


def test_pooled_table_has_one_row_per_feature(brats_outcome):
    table = brats_outcome.nodes.pooled_table
    pooled = brats_outcome.result.pooled
    assert table.GetNumberOfRows() == FEATURE_COUNT
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "mean"), pooled[:FEATURE_COUNT])
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "max"), pooled[FEATURE_COUNT:])


def test_chart_plots_mean_and_most_variable_feature_per_slice(brats_outcome):
    chart = brats_outcome.nodes.chart
    table = brats_outcome.nodes.table
    most_variable = int(np.argmax(brats_outcome.result.features.var(axis=0)))
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = [chart.GetNthPlotSeriesNode(index) for index in range(2)]
    assert [node.GetYColumnName() for node in series] == ["mean activation", f"feature_{most_variable}"]
    for node in series:
        assert node.GetTableNodeID() == table.GetID()
        assert node.GetXColumnName() == "slice"


def test_heatmap_volume_is_slices_by_features_in_viridis(brats_outcome, scene):
    heatmap = brats_outcome.nodes.heatmap
    features = brats_outcome.result.features
    voxels = arrayFromVolume(heatmap)
    assert voxels.shape == (1, 240, FEATURE_COUNT)
    np.testing.assert_array_equal(voxels[0], features)
    ijk_to_ras = vtk.vtkMatrix4x4()
    heatmap.GetIJKToRASMatrix(ijk_to_ras)
    np.testing.assert_allclose(  # 200 mm x 100 mm whatever the shape: features to the right, slices downwards
        slicer.util.arrayFromVTKMatrix(ijk_to_ras), np.diag([-200.0 / FEATURE_COUNT, -100.0 / 240, 1.0, 1.0])
    )
    display = heatmap.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeFileViridis.txt"
    assert scene.GetNodeByID(display.GetColorNodeID()) is not None
    assert display.GetInterpolate() == 0
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx(
        (float(features.min()), float(features.max()))
    )


def test_viridis_fallback_matches_matplotlib(brats_outcome, scene):
    matplotlib = pytest.importorskip("matplotlib")
    color_node = scene.GetNodeByID(results.VIRIDIS_COLOR_NODE_ID)
    expected = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]
    actual = np.array([color_node.GetLookupTable().GetTableValue(index)[:3] for index in range(256)])
    assert np.max(np.abs(actual - expected)) < 0.03


def test_show_results_changes_nothing_without_the_application(brats_outcome):
    assert views.show_results(brats_outcome.nodes) is None


# --- what the user sees: the Red view and the chart, rendered offscreen ----------------------------------------

SCREENSHOTS = Path(__file__).resolve().parents[1] / "Resources" / "Screenshots"
RED_VIEW_SCREENSHOT = SCREENSHOTS / "heatmap.png"
CHART_SCREENSHOT = SCREENSHOTS / "chart.png"
UPDATE_SCREENSHOTS = os.environ.get("DEN_UPDATE_SCREENSHOTS") == "1"
"""Set DEN_UPDATE_SCREENSHOTS=1 to rewrite the catalogue screenshots from the renderings (then look at them)."""


def viridis_colors(scene) -> np.ndarray:
    """The 256 colours of the heatmap's colour table as 0..255 RGB."""
    table = scene.GetNodeByID(results.VIRIDIS_COLOR_NODE_ID).GetLookupTable()
    return np.array([np.round(np.array(table.GetTableValue(index)[:3]) * 255) for index in range(256)])


def heatmap_indices(slice_node, heatmap, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The heatmap (row, column) each pixel row and pixel column of the rendered Red view falls in (floats).

    Computed from the Red slice node's XY-to-RAS matrix and the heatmap's RAS-to-IJK matrix, i.e. by Slicer's own
    geometry, not by the rendering.
    """
    xy_to_ras = slicer.util.arrayFromVTKMatrix(slice_node.GetXYToRAS())
    ras_to_ijk = vtk.vtkMatrix4x4()
    heatmap.GetRASToIJKMatrix(ras_to_ijk)
    xy_to_ijk = slicer.util.arrayFromVTKMatrix(ras_to_ijk) @ xy_to_ras
    rows = [(xy_to_ijk @ [width / 2, height - 1 - y, 0, 1])[1] for y in range(height)]  # top pixel row first
    columns = [(xy_to_ijk @ [x, height / 2, 0, 1])[0] for x in range(width)]
    return np.array(rows), np.array(columns)


def check_rendered_heatmap(scene, outcome, rendering) -> None:
    """What a user checks in the Red view: the whole matrix, tumour rows where foreground_rows says, Viridis."""
    pixels = rendering.pixels
    height, width, _ = pixels.shape
    rows, columns = heatmap_indices(rendering.slice_logic.GetSliceNode(), outcome.nodes.heatmap, height, width)
    row_count, feature_count = outcome.result.features.shape
    for centres, count, what in ((rows, row_count, "slice row"), (columns, feature_count, "feature")):
        pixel = abs(centres[1] - centres[0])  # the matrix fills the view from edge to edge, to within one pixel
        assert centres.min() <= -0.5 + pixel + 1e-6, f"the view does not show the first {what}"
        assert centres.max() >= count - 0.5 - pixel - 1e-6, f"the view does not show the last {what}"
    inside_columns = (columns > -0.5) & (columns < feature_count - 0.5)
    assert inside_columns.mean() > 0.95, "the heatmap should fill the view's width"
    colors = viridis_colors(scene)
    features = outcome.result.features
    shown_rows = np.flatnonzero((np.abs(rows - np.round(rows)) < 0.4) & (rows > -0.5) & (rows < row_count - 0.5))
    shown_columns = np.flatnonzero((np.abs(columns - np.round(columns)) < 0.4) & inside_columns)
    assert len(shown_rows) > 0.5 * height and len(shown_columns) > 0.5 * width  # pixels clearly inside one cell
    cells = features[np.round(rows[shown_rows]).astype(int)][:, np.round(columns[shown_columns]).astype(int)]
    low, high = float(features.min()), float(features.max())
    expected = np.clip(np.floor((cells - low) / (high - low) * 256), 0, 255).astype(int)
    pixels_shown = pixels[shown_rows][:, shown_columns].astype(float)
    off_by = np.min(  # each pixel is its cell's Viridis colour (to one table entry at a rounding edge)
        [np.abs(pixels_shown - colors[np.clip(expected + step, 0, 255)]).max(axis=2) for step in (-1, 0, 1)], axis=0
    )
    assert off_by.max() <= 1, "a pixel is not the Viridis colour of the feature it shows"
    empty_color = colors[0]  # rows without tumour hold zeros, the bottom of the full-range window
    colored = np.any(np.abs(pixels_shown - empty_color).max(axis=2) > 1, axis=1)
    rows_colored = set(np.round(rows[shown_rows][colored]).astype(int).tolist())
    foreground = set(outcome.result.foreground_rows.tolist())
    assert rows_colored <= foreground, "a row without tumour is not the empty-row colour"
    assert len(rows_colored) >= 0.9 * len(foreground), "the band of tumour rows is not where foreground_rows says"


def check_screenshot(path: Path, pixels: np.ndarray) -> None:
    """The catalogue screenshot is this rendering (to a few pixels: CPUs may round a feature differently)."""
    if UPDATE_SCREENSHOTS:
        Image.fromarray(pixels).save(path)
    with Image.open(path) as image:
        stored = np.asarray(image.convert("RGB"))
    assert stored.shape == pixels.shape
    assert np.mean(np.any(stored != pixels, axis=2)) < 0.005, f"{path.name} is not this rendering: set UPDATE"


def test_red_view_shows_the_tumour_rows_in_viridis(brats_outcome, scene, tmp_path):
    rendering = render_red_view(scene, brats_outcome.nodes.heatmap, tmp_path / "red.png")
    assert rendering.pixels.shape == (600, 1200, 3)
    check_rendered_heatmap(scene, brats_outcome, rendering)
    slice_node = rendering.slice_logic.GetSliceNode()
    assert slice_node.GetRulerType() == slicer.vtkMRMLAbstractViewNode.RulerTypeNone
    assert slice_node.GetOrientationMarkerType() == slicer.vtkMRMLAbstractViewNode.OrientationMarkerTypeNone


def test_views_are_given_back(brats_outcome, brats_labelmap, scene, tmp_path):
    rendering = render_red_view(scene, brats_outcome.nodes.heatmap, tmp_path / "red.png")
    slice_logic = rendering.slice_logic
    slice_node, composite = slice_logic.GetSliceNode(), slice_logic.GetSliceCompositeNode()
    slice_node.SetOrientationToCoronal()
    slice_node.SetFieldOfView(180.0, 90.0, 1.0)
    composite.SetLabelVolumeID(brats_labelmap.GetID())
    before = views.view_state(3, slice_logic)
    views.show_heatmap_in_slice_view(slice_logic, brats_outcome.nodes.heatmap)
    assert composite.GetBackgroundVolumeID() == brats_outcome.nodes.heatmap.GetID()
    assert composite.GetLabelVolumeID() is None
    views.apply_view_state(slice_logic, before)
    assert views.view_state(3, slice_logic) == before
    assert slice_node.GetOrientation() == "Coronal"


@pytest.fixture(scope="module")
def sample_outcome(scene, tmp_path_factory):
    """``process`` on the Load sample segmentation (the synthetic glioblastoma of ``den-extract --demo``)."""
    return process(add_sample_segmentation(scene), output_folder=tmp_path_factory.mktemp("sample"))


def test_sample_is_the_demo_case_with_named_segments(sample_outcome, slicer_extractor):
    node = sample_outcome.nodes.table.GetScene().GetFirstNodeByName("Synthetic glioblastoma")
    segmentation = node.GetSegmentation()
    names = {segmentation.GetNthSegment(index).GetName() for index in range(segmentation.GetNumberOfSegments())}
    assert names == {name for name, _ in SEGMENTS.values()} >= {"necrosis", "oedema", "enhancing"}
    labels, affine = synthetic_glioblastoma()
    np.testing.assert_array_equal(exported(node)[0].data, labels)
    expected = slicer_extractor.extract(segmentation_from_array(labels, affine, "synthetic"))
    assert_same_features(sample_outcome.result.features, expected.features)


def test_catalogue_screenshot_is_the_rendered_red_view(sample_outcome, scene, tmp_path):
    rendering = render_red_view(scene, sample_outcome.nodes.heatmap, tmp_path / "red.png")
    check_rendered_heatmap(scene, sample_outcome, rendering)
    check_screenshot(RED_VIEW_SCREENSHOT, rendering.pixels)


def series_mask(pixels: np.ndarray, color) -> np.ndarray:
    """The pixels drawn in a series' colour (to 2 levels per channel)."""
    return np.all(np.abs(pixels.astype(float) - np.round(np.array(color) * 255)) <= 2, axis=2)


def test_chart_shows_both_series(sample_outcome, tmp_path):
    chart = sample_outcome.nodes.chart
    pixels = render_chart(chart, tmp_path / "chart.png")
    if UPDATE_SCREENSHOTS:
        Image.fromarray(pixels).save(CHART_SCREENSHOT)
    with Image.open(CHART_SCREENSHOT) as image:
        stored = np.asarray(image.convert("RGB"))
    assert stored.shape == pixels.shape
    for index in range(chart.GetNumberOfPlotSeriesNodes()):
        color = chart.GetNthPlotSeriesNode(index).GetColor()
        drawn = series_mask(pixels, color)
        assert drawn.sum() > 500, f"series {index} is not drawn"
        # the catalogue screenshot draws the same curves (text may differ with the fonts of the machine)
        shown = series_mask(stored, color)
        assert (drawn & shown).sum() >= 0.8 * (drawn | shown).sum(), f"{CHART_SCREENSHOT.name}: series {index} differs"


def test_labelmap_input_gives_the_same_features(brats_labelmap, brats_reference, tmp_path):
    outcome = process(brats_labelmap, output_folder=tmp_path)
    assert_same_features(outcome.result.features, brats_reference.features)
    assert outcome.paths["npy"] == tmp_path / "OTMultiClass_reference_den.npy"  # a chosen folder beats the scene's


def test_a_label_map_node_with_labels_above_4_is_scaled_as_label_max_on_the_file(scene, tmp_path):
    import nibabel

    source = nibabel.load(BRATS_LABELS)
    labels = np.asarray(source.dataobj)
    relabelled = tmp_path / "labels_to_7.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.where(labels == 4, 7, labels).astype(np.uint8), source.affine), relabelled)
    node = load_labelmap_node(scene, relabelled, "labels to 7")
    outcome = process(node, output_folder=tmp_path / "slicer", mode="oriented")
    on_the_file = DENExtractor(mode="oriented", label_max=7).extract_file(relabelled)
    assert outcome.result.provenance["settings"]["label_max"] == 7.0
    assert_same_features(outcome.result.features, on_the_file.features)


def test_seg_nrrd_node_gives_the_command_line_features(seg_nrrd_node, slicer_extractor, tmp_path):
    outcome = process(seg_nrrd_node, output_folder=tmp_path)
    assert_same_features(outcome.result.features, slicer_extractor.extract_file(SEG_NRRD).features)
    assert outcome.nodes.table.GetNumberOfRows() == 128


def test_image_mode_gives_the_command_line_features(scene, brats_segmentation, slicer_extractor, tmp_path):
    flair = load_scalar_node(scene, BRATS_FLAIR, "Flair for image mode")
    outcome = process(brats_segmentation, image_node=flair, output_folder=tmp_path)
    assert_same_features(
        outcome.result.features, slicer_extractor.extract_file(BRATS_LABELS, image=BRATS_FLAIR).features
    )


def test_cancel_leaves_no_file_and_no_node(scene, brats_segmentation, tmp_path):
    calls = []
    before = node_ids(scene)
    output_folder = tmp_path / "out"
    with pytest.raises(ExtractionCancelled):
        process(brats_segmentation, output_folder=output_folder, progress=lambda *call: calls.append(call),
                cancel=lambda: len(calls) >= 1)
    assert len(calls) == 1
    assert node_ids(scene) == before
    assert not output_folder.exists() or not any(output_folder.iterdir())


# --- the module's self-test ------------------------------------------------------------------------------------


def test_the_slicer_self_test_golden_values_match_the_core(slicer_extractor):
    """The pinned numbers DENExtractorTest asserts in real Slicer are the core's numbers for the same case."""
    golden = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    data, affine = synthetic_glioblastoma(shape=tuple(golden["shape"]), seed=golden["seed"])
    result = slicer_extractor.extract(segmentation_from_array(data, affine, "synthetic"))
    assert list(result.features.shape) == golden["features_shape"]
    assert result.foreground_rows.tolist() == golden["foreground_rows"]
    tolerance = golden["relative_tolerance"]
    for row, column, expected in golden["features"]:
        assert result.features[row, column] == pytest.approx(expected, rel=tolerance, abs=1e-7)
    assert float(result.features.astype(np.float64).sum()) == pytest.approx(golden["feature_sum"], rel=tolerance)


def test_the_golden_values_ship_with_the_module():
    cmake = (GOLDEN_FILE.parents[1] / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "Resources/golden_features.json" in cmake


# --- the worker keeps one extractor --------------------------------------------------------------------------------


def test_the_worker_keeps_one_model_per_settings():
    worker = Worker()
    settings = ExtractionSettings()
    first = worker.extractor(settings)
    assert worker.extractor(settings) is first
    oriented = worker.extractor(ExtractionSettings(mode="oriented"))
    assert oriented is not first and worker.extractor(ExtractionSettings(mode="oriented")) is oriented
    assert worker.extractor(settings) is not first  # one kept at a time: the last settings'


def test_a_rewritten_weights_file_gets_a_new_extractor(tmp_path):
    import h5py
    from DENExtractorLib.network.architecture import weight_specs

    path = tmp_path / "den_trained.weights.h5"
    with h5py.File(path, "w") as handle:
        for index, spec in enumerate(weight_specs()):
            handle.create_dataset(f"layers/l{index}/vars/0", shape=spec.shape, dtype="float32")
    worker = Worker()
    settings = ExtractionSettings(weights=path)
    first = worker.extractor(settings)
    assert worker.extractor(settings) is first
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))  # den-train wrote the same file name again
    assert worker.extractor(settings) is not first
