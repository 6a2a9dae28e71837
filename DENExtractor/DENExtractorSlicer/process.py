"""The whole run inside Slicer: check the inputs, extract, write the files, add the result nodes.

A file gives the same features here as with ``den-extract`` (see :mod:`DENExtractorSlicer.nodes`): the settings
are the command line's :class:`DENExtractorLib.ExtractionSettings`, and one :class:`DENExtractorLib.DENExtractor`
is kept for the last settings used, so the network is built (and TensorFlow imported) once, not on every run.

Example (Slicer Python console)::

    from DENExtractorSlicer import process
    outcome = process(getNode("OTMultiClass"), output_folder="/tmp/den")
    outcome.result.features.shape    # (slices, 4096)
    outcome.paths["npy"]             # /tmp/den/OTMultiClass_den.npy
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from DENExtractorLib import (
    DENError,
    DENExtractor,
    ExtractionResult,
    ExtractionSettings,
    write_outputs,
)
from DENExtractorLib.outputs.output_folder import prepare_output_folder

from .checks import chosen_path, inputs_problem
from .nodes import segmentation_volume, volume_from_scalar_node
from .results import ResultNodes, add_results_to_scene

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclass
class ProcessOutcome:
    """What :func:`process` produced: the core's result, the nodes added to the scene and the files written."""

    result: ExtractionResult
    nodes: ResultNodes
    paths: dict[str, Path]


_kept: tuple[tuple, DENExtractor] | None = None
"""The extractor of the last settings used, with the state of its weights file (its network is built on its first
extraction and then kept)."""


def extractor_for(settings: ExtractionSettings) -> DENExtractor:
    """Return the kept extractor when it has these settings and its weights file is unchanged, else a new one that
    replaces it (``den-train`` rewrites the same weights file name: a retrained file must not meet the old model)."""
    global _kept
    key = (settings, _file_state(settings.weights))
    if _kept is None or _kept[0] != key:
        _kept = (key, DENExtractor(settings))
    return _kept[1]


def _file_state(path: Path | None) -> tuple[int, int] | None:
    """A weights file's modification time and size (None for the bundled weights or a vanished file)."""
    if path is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def settings_for(mode: str, plane: str | None, weights: str | Path | None) -> ExtractionSettings:
    """The extraction settings of the module's choices: the plane counts in oriented mode only, empty weights are
    the bundled ones. Raises :class:`DENError` for a bad choice (the core's check, as on the command line)."""
    return ExtractionSettings(mode=mode, plane=plane if mode == "oriented" else None, weights=chosen_path(weights))


def scene_output_folder(scene: Any, output_folder: str | Path | None) -> Path:
    """Return the folder results are written to: the chosen folder, else the saved scene's folder.

    :raises DENError: when neither exists; results are never written to a folder the user did not choose.
    """
    chosen = chosen_path(output_folder)
    if chosen is not None:
        return chosen
    url = scene.GetURL() if scene is not None else ""
    if url:
        return Path(url).resolve().parent
    raise DENError("output folder", "the scene has not been saved and no output folder was chosen: choose one")


def output_stem(node_name: str) -> str:
    """Return a node name as a safe file-name stem: ``"pat 1/OT"`` -> ``"pat_1_OT"``."""
    stem = re.sub(r"[^\w.-]+", "_", node_name).strip("._")
    return stem or "segmentation"


def process(
    input_node: Any,
    *,
    segment_ids: Sequence[str] | None = None,
    image_node: Any = None,
    mode: str = "reference",
    plane: str = "axial",
    weights: str | Path | None = None,
    output_folder: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    scene: Any = None,
) -> ProcessOutcome:
    """Extract the DEN features of a segmentation or label map node, save them and add result nodes to the scene.

    :param input_node: a ``vtkMRMLSegmentationNode`` or a ``vtkMRMLLabelMapVolumeNode``.
    :param segment_ids: segments of a segmentation to include (None: all); ignored for a label map.
    :param image_node: optional scalar volume for image mode; a segmentation is exported onto its grid.
    :param mode: ``"reference"`` (the published pipeline: slices along the first voxel axis) or ``"oriented"``.
    :param plane: ``"axial"``, ``"coronal"`` or ``"sagittal"`` (oriented mode only; ignored in reference mode).
    :param weights: a weights file; None (or empty) uses the bundled reference weights.
    :param output_folder: where ``<input node name>_den.npy``, ``.json`` and ``.png`` are written; None or empty
        means the folder of the saved scene.
    :param progress: called as ``progress(done, total)`` while slices are computed.
    :param cancel: polled during the extraction; when it returns True, ``ExtractionCancelled`` is raised and
        neither files nor nodes are created.
    :param scene: the scene receiving the result nodes; None means the input node's scene.
    :return: the result, the nodes added and the paths written.
    :raises DENError: with a one-line message for any bad input: the same message the module's status line shows
        (:func:`DENExtractorSlicer.checks.inputs_problem`).
    """
    scene = scene if scene is not None else (input_node.GetScene() if input_node is not None else None)
    weights_path = chosen_path(weights)
    problem = inputs_problem(
        input_node,
        image_node,
        segment_ids=segment_ids,
        use_bundled_weights=weights_path is None,
        weights_path=weights_path,
        output_folder=output_folder,
        scene_has_url=bool(scene.GetURL()) if scene is not None else False,
    )
    if problem is not None:
        raise problem
    if scene is None:
        raise DENError(input_node.GetName(), "the node is not in a MRML scene")
    settings = settings_for(mode, plane, weights_path)
    folder = prepare_output_folder(scene_output_folder(scene, output_folder))
    segmentation = segmentation_volume(input_node, segment_ids, image_node)
    image = volume_from_scalar_node(image_node) if image_node is not None else None
    result = extractor_for(settings).extract(segmentation, image, progress=progress, cancel=cancel)
    paths = write_outputs(result, folder, output_stem(input_node.GetName()))
    nodes = add_results_to_scene(result, scene, input_node.GetName())
    return ProcessOutcome(result=result, nodes=nodes, paths=paths)
