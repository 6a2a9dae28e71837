"""Loading real files into MRML nodes with the slicer-core package, as the Slicer application's readers do.

``slicer.util.loadLabelVolume`` and friends need the application; these use the same storage nodes directly.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The real imaging data beside the checkout (``../shared/data``)."""

BRATS_LABELS = DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz"
BRATS_FLAIR = DATA / "brats2015" / "pat0001" / "Flair_subtrMeanDivStd.nii.gz"
SEG_NRRD = DATA / "slicerio" / "Segmentation.seg.nrrd"
SEG_NRRD_OVERLAPPING = DATA / "slicerio" / "SegmentationOverlapping.seg.nrrd"


def _read_into(scene, node_class: str, storage_class: str, path: Path, name: str):
    """Add a node of ``node_class`` named ``name`` and read ``path`` into it with a ``storage_class`` node."""
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        raise OSError(f"{path}: could not be read into a {node_class}")
    return node


def load_labelmap_node(scene, path: Path, name: str = "labels"):
    """Read a label map file into a new ``vtkMRMLLabelMapVolumeNode``."""
    return _read_into(scene, "vtkMRMLLabelMapVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", path, name)


def load_scalar_node(scene, path: Path, name: str = "image"):
    """Read an intensity image file into a new ``vtkMRMLScalarVolumeNode``."""
    return _read_into(scene, "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", path, name)


def load_segmentation_node(scene, path: Path, name: str = "segmentation"):
    """Read a ``.seg.nrrd`` (or a label map file) into a new ``vtkMRMLSegmentationNode``."""
    return _read_into(scene, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", path, name)


def segmentation_from_labelmap(scene, labelmap_node, name: str = "segmentation"):
    """Import a label map node into a new segmentation node, one segment per label, on the label map's grid.

    As when a user converts a label map and picks it as the source volume in the Segment Editor, the label map's
    geometry becomes the segmentation's reference image geometry.
    """
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, segmentation_node):
        raise RuntimeError(f"{labelmap_node.GetName()}: import into a segmentation failed")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap_node)
    return segmentation_node


def segment_ids_by_label(segmentation_node) -> dict[int, str]:
    """Map each segment's label value to its segment ID."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]
    return {segmentation.GetSegment(segment_id).GetLabelValue(): segment_id for segment_id in ids}


def exported(node, segment_ids=None, image_node=None):
    """What the worker receives for these inputs, read as the worker reads it: (segmentation volume, image volume
    or None, the Slicer record for the provenance)."""
    import tempfile

    from DENExtractorSlicer import case_files, export

    with tempfile.TemporaryDirectory() as folder:
        for _step in export.export_steps(node, segment_ids, image_node, Path(folder)):
            pass
        return case_files.read_case(Path(folder))


def layered_segmentation(scene, labelmap_node, name: str = "layered"):
    """A segmentation with one segment per label value of ``labelmap_node``, each in a layer of its own (as when
    segments are imported one by one), on the label map's grid; segment ``"label<v>"`` holds the voxels of ``v``."""
    from slicer.util import arrayFromVolume, updateVolumeFromArray

    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    voxels = arrayFromVolume(labelmap_node)
    matrix = vtk_matrix(labelmap_node)
    for value in sorted(int(v) for v in np.unique(voxels) if v != 0):
        single = slicer.vtkMRMLLabelMapVolumeNode()
        single.SetName(f"label{value}")
        updateVolumeFromArray(single, (voxels == value).astype(np.uint8))
        single.SetIJKToRASMatrix(matrix)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(single, segmentation_node):
            raise RuntimeError(f"label {value}: import into a segmentation failed")
        segmentation = segmentation_node.GetSegmentation()
        segmentation.GetNthSegment(segmentation.GetNumberOfSegments() - 1).SetName(f"label{value}")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap_node)
    return segmentation_node


def vtk_matrix(volume_node):
    """A volume node's IJK-to-RAS matrix (vtkMatrix4x4)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return matrix


def save_segmentation(segmentation_node, path: Path) -> Path:
    """Write a segmentation node to ``path`` (``.seg.nrrd``) with Slicer's segmentation storage node, as File >
    Save does."""
    scene = segmentation_node.GetScene()
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    if not storage.WriteData(segmentation_node):
        raise OSError(f"{path}: the segmentation could not be written")
    scene.RemoveNode(storage)
    return path


@dataclass
class PolledRun:
    """What :func:`poll_to_end` saw: the run, the phases in order, and each poll's main-thread times (s)."""

    run: object
    phases: list
    wall: list
    cpu: list
    first_progress_s: float


def poll_to_end(run, interval: float = 0.01, until=None) -> PolledRun:
    """Poll a BackgroundExtraction as the module's timer does until it ends (or ``until(run)`` holds), timing
    each poll: wall-clock and this thread's CPU time (the main thread's own work, whatever else the machine runs)."""
    import time

    phases, wall, cpu = [], [], []
    started = time.perf_counter()
    first = None
    while not run.finished and not (until is not None and until(run)):
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        progress = run.poll()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.thread_time() - cpu_start)
        if first is None:
            first = time.perf_counter() - started
        if not phases or phases[-1] != progress.phase:
            phases.append(progress.phase)
        time.sleep(interval)
    return PolledRun(run, phases, wall, cpu, first if first is not None else 0.0)


@dataclass
class RedView:
    """An offscreen Red slice view: its rendered pixels (RGB, top row first) and the logic that rendered them."""

    pixels: np.ndarray
    slice_logic: object
    application_logic: object  # kept alive: the slice logic holds it without a reference


def render_red_view(scene, volume_node, path: Path, size: tuple[int, int] = (1200, 600)) -> RedView:
    """Render the Red slice view showing ``volume_node`` offscreen, as the module's results layout sets it up.

    The MRML logic of ``slicer-core`` does what the application's Red view does without its widget: an application
    logic, a slice logic for the "Red" slice node, :func:`DENExtractorSlicer.views.show_heatmap_in_slice_view`, and
    the slice logic's blended image (the layers through their colour tables) written as a PNG.

    :return: the rendered pixels, shape (height, width, 3), with the slice logic that rendered them.
    """
    import vtk
    from DENExtractorSlicer.views import show_heatmap_in_slice_view
    from vtk.util import numpy_support

    application_logic = slicer.vtkMRMLApplicationLogic()
    application_logic.SetMRMLScene(scene)
    slice_logic = slicer.vtkMRMLSliceLogic()
    slice_logic.SetMRMLApplicationLogic(application_logic)
    slice_logic.SetMRMLScene(scene)
    slice_node = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")  # the scene's Red view, as in the application
    if slice_node is None:
        slice_node = slice_logic.AddSliceNode("Red")
    else:
        slice_logic.SetSliceNode(slice_node)
    slice_node.SetDimensions(size[0], size[1], 1)
    show_heatmap_in_slice_view(slice_logic, volume_node)
    connection = slice_logic.GetImageDataConnection()
    writer = vtk.vtkPNGWriter()
    writer.SetInputConnection(connection)
    writer.SetFileName(str(path))
    writer.Write()
    image = connection.GetProducer().GetOutputDataObject(connection.GetIndex())
    width, height, _ = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    pixels = scalars.reshape(height, width, -1)[::-1, :, :3]  # VTK's first row is the bottom one
    return RedView(np.ascontiguousarray(pixels), slice_logic, application_logic)


def render_chart(chart_node, path: Path, size: tuple[int, int] = (1200, 400)) -> np.ndarray:
    """Render a Plots chart node offscreen with VTK's XY chart, the chart class Slicer's plot view draws with.

    Each series takes its table columns, colour and name from its ``vtkMRMLPlotSeriesNode``; the chart its title
    and axis titles from the ``vtkMRMLPlotChartNode``. The drawing runs in a fresh Python process: VTK's offscreen
    OpenGL (EGL) crashes in a process that has loaded TensorFlow.

    :return: the rendered pixels as an RGB array, top row first, shape (height, width, 3).
    """
    from PIL import Image

    spec = {
        "size": np.array(size),
        "titles": np.array([chart_node.GetTitle(), chart_node.GetXAxisTitle(), chart_node.GetYAxisTitle()]),
    }
    names = []
    for index in range(chart_node.GetNumberOfPlotSeriesNodes()):
        series = chart_node.GetNthPlotSeriesNode(index)
        table = series.GetTableNode()
        spec[f"x{index}"] = slicer.util.arrayFromTableColumn(table, series.GetXColumnName()).astype(float)
        spec[f"y{index}"] = slicer.util.arrayFromTableColumn(table, series.GetYColumnName()).astype(float)
        spec[f"color{index}"] = np.array(series.GetColor())
        names.append(series.GetName())
    spec["names"] = np.array(names)
    spec_path = Path(path).with_suffix(".npz")
    np.savez(spec_path, **spec)
    subprocess.run([sys.executable, "-c", _CHART_SCRIPT, str(spec_path), str(path)], check=True, capture_output=True)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


_CHART_SCRIPT = """
import sys
import numpy as np
import vtk
from vtk.util import numpy_support

spec = np.load(sys.argv[1])
view = vtk.vtkContextView()
window = view.GetRenderWindow()
window.SetOffScreenRendering(1)
window.SetSize(*(int(value) for value in spec["size"]))
view.GetRenderer().SetBackground(1.0, 1.0, 1.0)
chart = vtk.vtkChartXY()
view.GetScene().AddItem(chart)
title, x_title, y_title = (str(text) for text in spec["titles"])
chart.SetTitle(title)
chart.GetAxis(vtk.vtkAxis.BOTTOM).SetTitle(x_title)
chart.GetAxis(vtk.vtkAxis.LEFT).SetTitle(y_title)
chart.SetShowLegend(True)
for index, name in enumerate(spec["names"]):
    table = vtk.vtkTable()
    for axis in "xy":
        column = numpy_support.numpy_to_vtk(np.ascontiguousarray(spec[f"{axis}{index}"]), deep=True)
        column.SetName(axis)
        table.AddColumn(column)
    line = chart.AddPlot(vtk.vtkChart.LINE)
    line.SetInputData(table, 0, 1)
    line.SetColor(*(int(round(255 * channel)) for channel in spec[f"color{index}"]), 255)
    line.SetWidth(2.0)
    line.SetLabel(str(name))
window.Render()
grabber = vtk.vtkWindowToImageFilter()
grabber.SetInput(window)
writer = vtk.vtkPNGWriter()
writer.SetInputConnection(grabber.GetOutputPort())
writer.SetFileName(sys.argv[2])
writer.Write()
"""
