"""One run from the module's choices: checked inputs, the output folder, file names that say what differs.

:func:`start_extraction` checks everything the run needs (the rule the status line shows) and returns a
:class:`DENExtractorSlicer.background.BackgroundExtraction` that the module's timer polls (``run.poll()``,
``run.cancel()``, ``run.finished``, ``run.outcome``, ``run.error``): the non-blocking form for scripts.
:func:`process` is the same run waited for (:func:`wait_for`): Slicer's event loop keeps running while it waits,
and the work happens in the worker process, so TensorFlow never loads into Slicer.

Example (Slicer Python console)::

    from DENExtractorSlicer import process
    outcome = process(getNode("OTMultiClass"), output_folder="/tmp/den")
    outcome.result.features.shape    # (slices, 4096)
    outcome.paths["npy"]             # /tmp/den/OTMultiClass_reference_den.npy
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from DENExtractorLib import DENError, ExtractionSettings

from .background import WORKER_PHASES, BackgroundExtraction, ProcessOutcome, RunRequest
from .case_files import LARGEST_LABEL, oriented_label_max
from .checks import SEGMENTATION_CLASS, chosen_path, inputs_problem, segment_ids_of

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

RESULTS_SUBFOLDER = "DENExtractor"
"""Folder under Slicer's default scene path that takes the results of a scene never saved."""

MAX_STEM_LENGTH = 120
"""Longest file-name stem; a longer one is cut and ends with a short hash of the whole."""

POLL_SECONDS = 0.02


def settings_for(mode: str, plane: str | None, weights: str | Path | None,
                 largest_label: int | None = None) -> ExtractionSettings:
    """The extraction settings of the module's choices: the plane counts in oriented mode only, empty weights are
    the bundled ones. In oriented mode an input whose labels go up to ``largest_label`` gets the fixed label scale
    max(4, largest label), as ``den-extract --label-max N`` gives on the saved file. Raises :class:`DENError` for a
    bad choice (the core's check, as on the command line)."""
    label_max = oriented_label_max(largest_label) if mode == "oriented" else None
    return ExtractionSettings(mode=mode, plane=plane if mode == "oriented" else None, weights=chosen_path(weights),
                              label_max=label_max)


def label_scale_of(input_node: Any) -> int | str:
    """What fixes an input's label scale in oriented mode: a segmentation's segment count (its segments are
    numbered 1..N as the whole segmentation is, whichever are chosen), or, for a label map node,
    :data:`case_files.LARGEST_LABEL`: its largest voxel value, found by the worker (a scan of the whole volume
    would cost Slicer's main thread tens of milliseconds)."""
    if input_node.IsA(SEGMENTATION_CLASS):
        return int(input_node.GetSegmentation().GetNumberOfSegments())
    return LARGEST_LABEL


def scene_output_folder(scene: Any, output_folder: str | Path | None, default_folder: str | Path | None = None) -> Path:
    """The folder results are written to: the chosen folder, else the saved scene's folder, else
    ``<default_folder>/DENExtractor`` (the module passes Slicer's default scene path).

    :raises DENError: when none of them is known.
    """
    chosen = chosen_path(output_folder)
    if chosen is not None:
        return chosen
    url = scene.GetURL() if scene is not None else ""
    if url:
        return Path(url).resolve().parent
    default = chosen_path(default_folder)
    if default is not None:
        return default / RESULTS_SUBFOLDER
    raise DENError("output folder", "the scene has not been saved and no output folder was chosen: choose one")


def output_stem(node_name: str) -> str:
    """Return a node name as a safe file-name stem: ``"pat 1/OT"`` -> ``"pat_1_OT"``."""
    stem = re.sub(r"[^\w.-]+", "_", node_name).strip("._")
    return stem or "segmentation"


def result_stem(
    input_node: Any,
    segment_ids: Sequence[str] | None = None,
    image_node: Any = None,
    mode: str = "reference",
    plane: str | None = None,
    weights: Path | None = None,
) -> str:
    """The results' file name stem: the input, then what can differ between runs on it (the chosen segments
    unless all, the MRI, the mode, the plane in oriented mode, the weights file unless bundled), so two runs that
    differ never overwrite each other's files: ``OT_seg-necrosis+oedema_Flair_oriented-coronal``."""
    parts = [output_stem(input_node.GetName())]
    if input_node.IsA(SEGMENTATION_CLASS) and segment_ids is not None and list(segment_ids) != segment_ids_of(input_node):
        segmentation = input_node.GetSegmentation()
        names = [segmentation.GetSegment(segment_id).GetName() for segment_id in segment_ids]
        parts.append("seg-" + "+".join(output_stem(name) for name in names))
    if image_node is not None:
        parts.append(output_stem(image_node.GetName()))
    parts.append(f"oriented-{plane}" if mode == "oriented" else mode)
    if weights is not None:
        parts.append("weights-" + output_stem(Path(weights).name.split(".")[0]))
    stem = "_".join(parts)
    if len(stem) > MAX_STEM_LENGTH:
        digest = hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]
        stem = f"{stem[: MAX_STEM_LENGTH - 9]}-{digest}"
    return stem


def start_extraction(
    input_node: Any,
    *,
    segment_ids: Sequence[str] | None = None,
    image_node: Any = None,
    mode: str = "reference",
    plane: str = "axial",
    weights: str | Path | None = None,
    output_folder: str | Path | None = None,
    default_folder: str | Path | None = None,
    scene: Any = None,
    python: str | Path | None = None,
    environment: dict[str, str] | None = None,
) -> BackgroundExtraction:
    """Check the inputs and return the run, not started (the caller polls it).

    :param default_folder: where results go (under ``DENExtractor/``) when no folder is chosen and the scene was
        never saved: the module passes Slicer's default scene path.
    :param python: the worker's interpreter; None: Slicer's ``PythonSlicer`` (with Slicer's start-up environment)
        inside the application, this interpreter elsewhere (``slicer-core``).
    :raises DENError: with the one-line message the module's status line shows.
    """
    scene = scene if scene is not None else (input_node.GetScene() if input_node is not None else None)
    weights_path = chosen_path(weights)
    folder_known = bool(scene.GetURL()) if scene is not None else False
    problem = inputs_problem(
        input_node,
        image_node,
        segment_ids=segment_ids,
        use_bundled_weights=weights_path is None,
        weights_path=weights_path,
        output_folder=output_folder,
        scene_has_url=folder_known or chosen_path(default_folder) is not None,
    )
    if problem is not None:
        raise problem
    if scene is None:
        raise DENError(input_node.GetName(), "the node is not in a MRML scene")
    scale = label_scale_of(input_node) if mode == "oriented" else None
    settings = settings_for(mode, plane, weights_path, scale if isinstance(scale, int) else None)
    if not input_node.IsA(SEGMENTATION_CLASS):
        segment_ids = None
    request = RunRequest(
        input_node=input_node,
        output_folder=scene_output_folder(scene, output_folder, default_folder),
        stem=result_stem(input_node, segment_ids, image_node, settings.mode, settings.plane, settings.weights),
        segment_ids=None if segment_ids is None else list(segment_ids),
        image_node=image_node,
        settings=settings,
        scene=scene,
        scale_from_case=scale == LARGEST_LABEL,
    )
    if python is None:
        python, environment = worker_interpreter(environment)
    return BackgroundExtraction(request, python=python, environment=environment)


def worker_interpreter(environment: dict[str, str] | None = None) -> tuple[str, dict[str, str] | None]:
    """The worker's interpreter and environment: ``PythonSlicer`` and Slicer's start-up environment inside the
    application, this interpreter (and ``environment``) elsewhere.

    :raises DENError: inside the application, when ``PythonSlicer`` is missing.
    """
    import slicer

    if getattr(slicer, "app", None) is None:
        return sys.executable, environment
    from . import install

    return install.python_slicer(), environment if environment is not None else install.worker_environment()


def process(
    input_node: Any,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    **options: Any,
) -> ProcessOutcome:
    """Extract, save and show the DEN features of a segmentation or label map node, waiting for the result while
    Slicer's event loop keeps running (:func:`wait_for`).

    Takes :func:`start_extraction`'s options (``segment_ids``, ``image_node``, ``mode``, ``plane``, ``weights``,
    ``output_folder``, ``default_folder``, ``scene``, ``python``). ``progress(done, total)`` is called as slices
    are computed; when ``cancel()`` returns True the run is cancelled (``ExtractionCancelled``; no file, no node).

    :raises DENError: for any bad input (one line); ``ExtractionCancelled`` when cancelled.
    """
    return wait_for(start_extraction(input_node, **options), progress=progress, cancel=cancel)


def wait_for(
    run: BackgroundExtraction, *, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None
) -> ProcessOutcome:
    """Advance a run from :func:`start_extraction` to its end and return its outcome. Inside Slicer the event loop
    runs between polls (the views redraw, buttons answer, a timer may cancel the run), so waiting here never
    freezes Slicer; elsewhere it sleeps between polls.

    :raises DENError: the run's fault; ``ExtractionCancelled`` when it was cancelled (by ``cancel()`` or
        ``run.cancel()``).
    """
    shown = None
    while not run.finished:
        if cancel is not None and cancel():
            run.cancel()
            break
        state = run.poll()
        if progress is not None and state.phase == "network" and (state.done, state.total) != shown:
            shown = (state.done, state.total)
            progress(state.done, state.total)
        _let_events_run(POLL_SECONDS if state.phase in WORKER_PHASES else 0.0)
    if run.error is not None:
        raise run.error
    assert run.outcome is not None
    return run.outcome


def _let_events_run(seconds: float) -> None:
    """Let Slicer's event loop run for ``seconds`` (at least its pending events once); outside Slicer, sleep."""
    import slicer

    application = getattr(slicer, "app", None)
    if application is None:
        time.sleep(seconds)
        return
    import qt

    if seconds <= 0:
        application.processEvents()
        return
    loop = qt.QEventLoop()
    qt.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()
