"""Loading real files into MRML nodes with the slicer-core package, as the Slicer application's readers do.

``slicer.util.loadLabelVolume`` and friends need the application; these use the same storage nodes directly.
"""

from __future__ import annotations

from pathlib import Path

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
