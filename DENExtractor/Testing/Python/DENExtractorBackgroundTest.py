"""Build-time test of the module's background run inside Slicer (registered with CTest in CMakeLists.txt).

Runs under ``Slicer --testing`` with ``slicer.testing.runUnitTest``, i.e. plain ``unittest``: what needs no
TensorFlow always runs (the export for the worker, Cancel before the worker), what needs the worker's TensorFlow is
skipped (``skipTest``, reported as skipped) where Slicer has not installed it, never passed. It runs with the
``slicer-core`` package too (``python -m unittest DENExtractorBackgroundTest``).
"""

from __future__ import annotations

import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import slicer
from DENExtractorLib import ExtractionCancelled
from DENExtractorLib.demo import synthetic_glioblastoma
from DENExtractorSlicer import background, case_files, export, install, start_extraction
from slicer.util import updateVolumeFromArray, vtkMatrixFromArray

SHAPE = (48, 40, 24)
SEED = 7


def add_labelmap(scene, name: str = "synthetic"):
    """The self-test's synthetic glioblastoma as a label map node in ``scene``; returns (node, voxels (i, j, k))."""
    data, affine = synthetic_glioblastoma(shape=SHAPE, seed=SEED)
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    updateVolumeFromArray(node, np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    node.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
    return node, data


def worker_python() -> str:
    """The worker's interpreter: PythonSlicer in the application, this Python with slicer-core."""
    return install.python_slicer() if hasattr(slicer, "app") else sys.executable


class DENExtractorBackgroundTest(unittest.TestCase):
    """The background run on real MRML nodes, with Slicer's Python as the worker."""

    def setUp(self) -> None:
        """A scene of its own, and a folder for the results."""
        self.scene = slicer.vtkMRMLScene()
        self.folder = Path(tempfile.mkdtemp(prefix="den-ctest-"))

    def tearDown(self) -> None:
        """End the worker."""
        background.stop_warm_worker()

    def test_export_hardens_the_transform_into_the_copy(self) -> None:
        """The worker receives the node's voxels unchanged, the transform in the grid, the user's node untouched."""
        node, data = add_labelmap(self.scene)
        shift = np.eye(4)
        shift[:3, 3] = (5.0, 0.0, 0.0)
        transform = self.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
        transform.SetMatrixTransformToParent(vtkMatrixFromArray(shift))
        node.SetAndObserveTransformNodeID(transform.GetID())
        for _step in export.export_steps(node, None, None, self.folder):
            pass
        volume, image, record = case_files.read_case(self.folder)
        np.testing.assert_array_equal(volume.data, data)
        _, affine = synthetic_glioblastoma(shape=SHAPE, seed=SEED)
        np.testing.assert_allclose(volume.affine, shift @ affine, atol=1e-9)
        self.assertIsNone(image)
        self.assertEqual(record["input_transform"]["matrix_to_world"], shift.tolist())
        self.assertIs(node.GetParentTransformNode(), transform)

    def test_cancel_before_the_worker_leaves_nothing(self) -> None:
        """Cancel while exporting: no file, no node, and no worker was needed."""
        node, _ = add_labelmap(self.scene)
        before = self.scene.GetNumberOfNodes()
        output = self.folder / "out"
        run = start_extraction(node, output_folder=output, scene=self.scene, python=worker_python())
        run.poll()
        self.assertEqual(run.progress.phase, "exporting")
        run.cancel()
        self.assertIsInstance(run.error, ExtractionCancelled)
        self.assertEqual(self.scene.GetNumberOfNodes(), before)
        self.assertFalse(output.exists() and any(output.iterdir()))

    def test_background_run_keeps_tensorflow_out_of_slicer(self) -> None:
        """A whole run in the worker: features written and shown, TensorFlow never imported here."""
        missing = install.unmet(install.requirements())
        if missing:
            self.skipTest("needs " + ", ".join(install.display_name(req) for req in missing) + " in the worker")
        if "tensorflow" in sys.modules:
            self.skipTest("TensorFlow was imported here before this test: nothing to check")
        node, _ = add_labelmap(self.scene)
        run = start_extraction(node, output_folder=self.folder / "out", scene=self.scene, python=worker_python(),
                               environment=install.worker_environment() if hasattr(slicer, "app") else None)
        while not run.finished:
            run.poll()
            time.sleep(0.01)
        self.assertIsNone(run.error)
        self.assertEqual(run.outcome.result.features.shape, (SHAPE[0], 4096))
        self.assertTrue(all(Path(path).is_file() for path in run.outcome.paths.values()))
        self.assertNotIn("tensorflow", sys.modules)


if __name__ == "__main__":
    unittest.main()
