"""A sample to try the module without data: the synthetic glioblastoma of ``den-extract --demo``, generated here.

Nothing is downloaded: the label map is computed (a second or two) and imported as a segmentation with one named
segment per tumour region, on the label map's grid, so it gives the same features as ``den-extract --demo``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import slicer
from DENExtractorLib import demo
from slicer.util import updateVolumeFromArray, vtkMatrixFromArray

SAMPLE_NAME = "Synthetic glioblastoma"

SEGMENTS = {
    demo.NECROSIS: ("necrosis", (0.85, 0.33, 0.10)),
    demo.OEDEMA: ("oedema", (0.47, 0.75, 0.35)),
    demo.NON_ENHANCING: ("non-enhancing tumour", (0.98, 0.78, 0.25)),
    demo.ENHANCING: ("enhancing", (0.90, 0.10, 0.45)),
}
"""Label value of each region of the synthetic glioblastoma (BraTS labelling) -> segment name and colour."""


def add_sample_segmentation(scene: Any, shape: tuple[int, int, int] = demo.DEMO_SHAPE) -> Any:
    """Add the synthetic glioblastoma to ``scene`` as a segmentation node with named segments; return the node.

    Each segment keeps its BraTS label value (necrosis 1, oedema 2, non-enhancing tumour 3, enhancing 4) and the
    label map's grid is the segmentation's reference geometry, so extraction sees exactly the demo's label map.
    Generating it takes a second or two: the module uses :class:`SampleInBackground` instead.
    """
    return _added_to_scene(scene, _sample_segmentation(shape))


class SampleInBackground:
    """The sample generated and imported into a segmentation on a thread (seconds of numpy and VTK work on objects
    no other thread sees), then handed to a new node of the scene on the main thread when :meth:`poll` finds it
    ready (milliseconds), so Load sample never holds Slicer's main thread."""

    def __init__(self, scene: Any, shape: tuple[int, int, int] = demo.DEMO_SHAPE) -> None:
        """Start generating the sample for ``scene``."""
        self._scene = scene
        self._segmentation: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._generate, args=(shape,), daemon=True, name="den-sample")
        self._thread.start()

    def _generate(self, shape: tuple[int, int, int]) -> None:
        try:
            self._segmentation = _sample_segmentation(shape)
        except Exception as error:  # handed to the main thread by poll()
            self._error = error

    def poll(self) -> Any:
        """The sample's segmentation node once it is ready (added to the scene now), else None.

        :raises RuntimeError: when generating or importing it failed.
        """
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise RuntimeError(f"{SAMPLE_NAME}: could not be generated ({self._error})") from self._error
        return _added_to_scene(self._scene, self._segmentation)


def _sample_segmentation(shape: tuple[int, int, int]) -> Any:
    """The synthetic labels imported into a segmentation (a ``vtkSegmentation``) with named, coloured segments,
    built in a private scene that no other thread sees."""
    labels, affine = demo.synthetic_glioblastoma(shape=shape, seed=demo.DEMO_SEED)
    private_scene = slicer.vtkMRMLScene()
    labelmap = private_scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", SAMPLE_NAME)
    updateVolumeFromArray(labelmap, np.ascontiguousarray(np.transpose(labels, (2, 1, 0))))
    labelmap.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
    segmentation_node = private_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", SAMPLE_NAME)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
        raise RuntimeError(f"{SAMPLE_NAME}: the label map could not be imported into a segmentation")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        segment_name, color = SEGMENTS[int(segment.GetLabelValue())]
        segment.SetName(segment_name)
        segment.SetColor(*color)
    return segmentation


def _added_to_scene(scene: Any, segmentation: Any) -> Any:
    """A new segmentation node in ``scene`` holding the sample's segmentation (handed over, not copied), under a
    unique name, with its display nodes."""
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(SAMPLE_NAME))
    segmentation_node.SetAndObserveSegmentation(segmentation)
    segmentation_node.CreateDefaultDisplayNodes()
    return segmentation_node
