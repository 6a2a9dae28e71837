"""The module's run outside Slicer's process: real MRML nodes (slicer-core), a real worker process, real TensorFlow.

What a clinician relies on: Slicer's main thread does only small steps (each poll's CPU time is measured), progress
shows at once, Cancel in any phase leaves no file and no node, a closed scene or a deleted input gets nothing
added, a crashed worker fails the run (not Slicer), and TensorFlow never loads into the Slicer side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import slicer
from DENExtractorLib import ExtractionCancelled
from DENExtractorLib.demo import synthetic_glioblastoma
from DENExtractorSlicer import background, start_extraction
from slicer_helpers import BRATS_LABELS, poll_to_end

pytestmark = [pytest.mark.slicer, pytest.mark.slow]

LEAST_POLLS = 20
"""A run advances in many small timer ticks, never in one call that blocks: the longest tick's CPU and wall time
are measured and printed by the ``slicer_side`` fixture (reported in docs/slicer.md), never asserted: no test
asserts a time."""


def node_ids(scene) -> set[str]:
    return {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}


def add_synthetic_labelmap(scene, name: str = "synthetic"):
    """The self-test's small synthetic glioblastoma (48 slices) as a label map node."""
    from slicer.util import updateVolumeFromArray, vtkMatrixFromArray

    data, affine = synthetic_glioblastoma(shape=(48, 40, 24), seed=7)
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    updateVolumeFromArray(node, np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    node.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
    return node


@pytest.fixture(scope="module", autouse=True)
def worker_ended_after_the_module():
    yield
    background.stop_warm_worker()


# --- the Slicer side, played by a fresh process ------------------------------------------------------------------

SLICER_SIDE = textwrap.dedent("""
    import json, sys, time
    import slicer
    from DENExtractorSlicer import start_extraction
    from slicer_helpers import load_labelmap_node, poll_to_end

    scene = slicer.vtkMRMLScene()
    node = load_labelmap_node(scene, sys.argv[1], "OTMultiClass")
    clicks = []
    for click in range(2):
        started = time.perf_counter()
        run = start_extraction(node, output_folder=sys.argv[2], scene=scene)
        polled = poll_to_end(run, interval=0.005)
        assert run.outcome is not None, run.error
        clicks.append({"seconds": time.perf_counter() - started, "phases": polled.phases,
                       "longest_cpu": max(polled.cpu), "longest_wall": max(polled.wall), "polls": len(polled.cpu),
                       "first_progress_s": polled.first_progress_s, "npy": str(run.outcome.paths["npy"])})
    print(json.dumps({"clicks": clicks, "tensorflow": sorted(m for m in sys.modules if m.split(".")[0] in
                      ("tensorflow", "keras"))}))
""")


@pytest.fixture(scope="module")
def slicer_side(tmp_path_factory):
    """Two clicks on the BraTS label map in a fresh process that plays Slicer's (its worker: a real PythonSlicer
    stand-in, this interpreter)."""
    folder = tmp_path_factory.mktemp("slicer_side")
    completed = subprocess.run(
        [sys.executable, "-c", SLICER_SIDE, str(BRATS_LABELS), str(folder)],
        capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    print("\nSlicer side:", json.dumps(report, indent=1))
    return report


@pytest.mark.needs_data
def test_tensorflow_never_loads_into_the_slicer_side(slicer_side):
    assert slicer_side["tensorflow"] == []


@pytest.mark.needs_data
def test_the_worker_gives_den_extracts_features(slicer_side, reference_result):
    for click in slicer_side["clicks"]:
        features = np.load(click["npy"])
        assert float(np.max(np.abs(features - reference_result.features))) == 0.0


@pytest.mark.needs_data
def test_every_poll_is_a_small_step_and_progress_shows_at_once(slicer_side):
    first, second = slicer_side["clicks"]
    assert first["phases"] == ["exporting", "starting", "loading", "network", "writing", "finishing", "done"]
    assert second["phases"][-1] == "done"
    for click in (first, second):
        assert click["polls"] >= LEAST_POLLS, click["polls"]


# --- Cancel, Close Scene, a deleted input, a crash ---------------------------------------------------------------

WORKER_PHASES = ("starting", "loading", "network", "writing")


@pytest.mark.parametrize(
    "phase", ["checking", "exporting", "starting", "loading", "network", "writing", "finishing"]
)
def test_cancel_in_any_phase_leaves_no_file_and_no_node(phase, tmp_path):
    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    before = node_ids(scene)
    output = tmp_path / "out"
    run = start_extraction(node, output_folder=output, scene=scene)
    if phase != "checking":
        poll_to_end(run, interval=0.002, until=lambda r: r.progress.phase == phase)
    assert run.progress.phase == phase and not run.finished
    private = run._folder
    worker = run._worker
    run.cancel()
    assert run.cancelled and isinstance(run.error, ExtractionCancelled)
    assert run.poll().phase == phase  # a cancelled run does nothing more
    assert node_ids(scene) == before
    assert not output.exists() or not any(output.iterdir())
    assert private is None or not private.exists()
    if phase in WORKER_PHASES:
        assert worker._process.wait(timeout=30) != 0  # killed, not left running
    elif worker is not None:
        assert worker.alive  # nothing was sent to it: it stays warm


@pytest.mark.parametrize("what", ["close scene", "delete input"])
def test_results_are_added_only_to_the_scene_and_input_the_run_started_from(what, tmp_path):
    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    output = tmp_path / "out"
    run = start_extraction(node, output_folder=output, scene=scene)
    poll_to_end(run, interval=0.002, until=lambda r: r.progress.phase == "network")
    if what == "close scene":
        scene.Clear(0)
    else:
        scene.RemoveNode(node)
    after = node_ids(scene)
    worker = run._worker._process
    run.poll()  # the next timer tick stops the worker at once, not at the end of its work
    assert run.finished and worker.wait(timeout=30) != 0
    assert run.outcome is None and "removed or the scene was closed" in str(run.error)
    assert node_ids(scene) == after
    assert not output.exists() or not any(output.iterdir())


def test_a_crashed_worker_fails_the_run_not_slicer_and_says_how_it_ended(tmp_path):
    """A worker killed mid-run is reported with the signal that ended it and its log, kept (and named) until the
    next run; the next click starts afresh."""
    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    run = start_extraction(node, output_folder=tmp_path / "out", scene=scene)
    poll_to_end(run, interval=0.002, until=lambda r: r.progress.phase in ("loading", "network"))
    os.kill(run._worker._process.pid, signal.SIGKILL)  # as a TensorFlow crash (or the kernel's OOM killer) would
    poll_to_end(run, interval=0.01)
    message = str(run.error)
    assert "the worker process was killed by signal SIGKILL (perhaps for lack of memory)" in message
    log = Path(message.split("its log is ")[1].split(" (kept")[0])
    assert log.is_file()
    assert scene.GetNodeByID(node.GetID()) is node
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    again = start_extraction(node, output_folder=tmp_path / "again", scene=scene)  # the next click starts afresh
    poll_to_end(again, interval=0.01)
    assert again.outcome is not None
    assert not log.exists()  # the crashed worker's log lived until the next run


def test_a_worker_python_without_tensorflow_says_so_and_leads_to_the_install(tmp_path):
    """A worker whose Python lacks TensorFlow and Keras (a real interpreter, with every other requirement) ends the
    run with a message naming what is missing, as the error the module answers with its install flow."""
    site = tmp_path / "site-packages-without-tensorflow"
    site.mkdir()
    for entry in Path(np.__file__).parents[1].iterdir():
        shadows_the_standard_library = entry.name.split(".")[0] in sys.stdlib_module_names  # a backport's typing.py
        if not entry.name.lower().startswith(("tensorflow", "keras", "tf_keras", "tensorboard")) \
                and not shadows_the_standard_library:
            (site / entry.name).symlink_to(entry)
    python = Path(sys.base_prefix) / "bin" / "python3"
    background.stop_warm_worker()
    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    run = start_extraction(node, output_folder=tmp_path / "out", scene=scene, python=python,
                           environment={**os.environ, "PYTHONPATH": str(site)})
    poll_to_end(run, interval=0.01)
    background.stop_warm_worker()
    assert isinstance(run.error, background.WorkerPackagesMissing)
    assert "the worker's Python cannot import keras: the required packages are not installed" in str(run.error)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


CANCEL_THEN_EXIT = textwrap.dedent("""
    import sys
    import slicer
    from DENExtractorSlicer import background, start_extraction
    from slicer_helpers import load_labelmap_node, poll_to_end

    scene = slicer.vtkMRMLScene()
    node = load_labelmap_node(scene, sys.argv[1], "OTMultiClass")
    run = start_extraction(node, output_folder=sys.argv[2], scene=scene)
    poll_to_end(run, interval=0.002, until=lambda r: r.progress.phase == sys.argv[3])
    run.cancel()
    background.stop_warm_worker()  # what the module's cleanup() does as Slicer exits
    print("cancelled in", run.progress.phase)
""")


@pytest.mark.needs_data
@pytest.mark.parametrize("phase", ["exporting", "network"])
def test_nothing_is_left_behind_after_a_cancel_and_an_immediate_exit(phase, tmp_path):
    """Cancel, then Slicer exits at once: no private case folder and no worker log is left in the temporary
    folder (the folder is deleted before cancel() returns, not by a thread that would die with Slicer)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    completed = subprocess.run(
        [sys.executable, "-c", CANCEL_THEN_EXIT, str(BRATS_LABELS), str(tmp_path / "out"), phase],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TMPDIR=str(temporary)),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == f"cancelled in {phase}"
    assert sorted(path.name for path in temporary.iterdir()) == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_worker_stays_warm_between_clicks(tmp_path):
    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    first = start_extraction(node, output_folder=tmp_path, scene=scene)
    poll_to_end(first)
    second = start_extraction(node, output_folder=tmp_path, scene=scene, mode="oriented")
    polled = poll_to_end(second)
    assert second._worker is first._worker and second._worker.alive
    assert "starting" in polled.phases  # one poll sends the request; the answer comes from the same process
    assert Path(first.outcome.paths["npy"]) != Path(second.outcome.paths["npy"])


def test_a_fault_the_worker_finds_is_one_line_and_keeps_it_warm(tmp_path):
    from slicer_helpers import segmentation_from_labelmap

    scene = slicer.vtkMRMLScene()
    node = segmentation_from_labelmap(scene, add_synthetic_labelmap(scene), "with an empty segment")
    empty = slicer.vtkSegment()
    empty.SetName("not drawn yet")
    empty.AddRepresentation("Binary labelmap", slicer.vtkOrientedImageData())
    assert node.GetSegmentation().AddSegment(empty, "empty")
    before = node_ids(scene)
    run = start_extraction(node, segment_ids=["empty"], output_folder=tmp_path / "out", scene=scene)
    poll_to_end(run)
    assert str(run.error) == "with an empty segment [segments: not drawn yet]: the chosen segments are empty: " \
                             "nothing to extract"
    assert run._worker.alive and background._Kept.worker is run._worker
    assert node_ids(scene) == before and not (tmp_path / "out").exists()


def test_the_console_forms_start_poll_wait_and_cancel(tmp_path):
    """The documented non-blocking form: ``start_extraction`` returns at once, a timer's ``poll()`` advances the
    run, ``wait_for`` waits for the rest and returns the outcome; a cancelled run makes ``wait_for`` raise
    ``ExtractionCancelled`` and leaves nothing."""
    from DENExtractorSlicer.runs import wait_for

    scene = slicer.vtkMRMLScene()
    node = add_synthetic_labelmap(scene)
    run = start_extraction(node, output_folder=tmp_path / "out", scene=scene)
    assert run.progress.phase == "checking" and not run.finished  # nothing ran yet
    run.poll()
    assert run.progress.phase == "exporting"
    outcome = wait_for(run, progress=lambda done, total: None)
    assert outcome.paths["npy"].is_file() and outcome.result.features.shape[1] == 4096
    before = node_ids(scene)
    cancelled = start_extraction(node, output_folder=tmp_path / "cancelled", scene=scene)
    poll_to_end(cancelled, interval=0.002, until=lambda r: r.progress.phase == "network")
    cancelled.cancel()
    with pytest.raises(ExtractionCancelled):
        wait_for(cancelled)
    assert node_ids(scene) == before and not (tmp_path / "cancelled").exists()
