"""A sample to try the module without data: the synthetic glioblastoma of ``den-extract --demo``, generated here.

Nothing is downloaded: the label map is computed (a second or two) and imported as a segmentation with one named
segment per tumour region, on the label map's grid, so it gives the same features as ``den-extract --demo``.
"""

from __future__ import annotations

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
    """
    labels, affine = demo.synthetic_glioblastoma(shape=shape, seed=demo.DEMO_SEED)
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    labelmap.SetName(SAMPLE_NAME)
    updateVolumeFromArray(labelmap, np.ascontiguousarray(np.transpose(labels, (2, 1, 0))))
    labelmap.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
    name = scene.GenerateUniqueName(SAMPLE_NAME)
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
        scene.RemoveNode(segmentation_node)
        raise RuntimeError(f"{SAMPLE_NAME}: the label map could not be imported into a segmentation")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        segment_name, color = SEGMENTS[int(segment.GetLabelValue())]
        segment.SetName(segment_name)
        segment.SetColor(*color)
    segmentation_node.CreateDefaultDisplayNodes()
    return segmentation_node
