"""Writing a result: ``{stem}_den.npy`` (features), ``{stem}_den.png`` (heatmap), ``{stem}_den.json`` (provenance).

The three are written to temporary files first and then renamed into place together, the ``.json`` last with the
sha256 of the ``.npy`` (and ``.png``) it belongs to, so they are one unit: an interruption leaves the old set or
the new one (and at worst, within the renames, a new ``.npy`` beside an old ``.json`` that does not name it), and a
reader (and ``--resume``) trusts a ``.json`` only beside the very files it names.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..hashing import file_sha256
from ..result import ExtractionResult
from ..settings import ExtractionSettings
from .atomic import atomic_path
from .heatmap import save_heatmap_png
from .output_folder import prepare_output_folder

OUTPUT_SUFFIX = "_den"
OUTPUT_KINDS = ("npy", "json", "png")
LOWEST_END_OF_RAS_AXIS = {"R": "left", "A": "posterior", "S": "inferior"}
"""Where row 0 of an oriented-mode stack lies: the low end of the RAS axis the slices are stacked along."""
MAX_NAME_BYTES = 255
"""Longest file name most file systems accept."""
RECORD_CHECKSUM = "record_sha256"
"""The provenance field holding the checksum of the rest of the record."""


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """The paths of the ``npy``, ``json`` and ``png`` outputs of ``stem`` in ``out_dir``."""
    base = Path(out_dir) / f"{stem}{OUTPUT_SUFFIX}"
    return {kind: base.with_name(f"{base.name}.{kind}") for kind in OUTPUT_KINDS}


def check_output_names(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Return the output paths of ``stem``, refusing names too long for the file system or taken by a folder."""
    paths = output_paths(out_dir, stem)
    for path in paths.values():
        if len(path.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise DENError(stem, f"the output name {path.name[:40]}... is longer than {MAX_NAME_BYTES} bytes: use a shorter case id")
        if path.is_dir():
            raise DENError(path, "an output of this case would replace this existing folder: move it or choose another output folder")
    return paths


def write_outputs(result: ExtractionResult, out_dir: str | Path, stem: str, *, png: bool = True) -> dict[str, Path]:
    """Write the feature matrix, (unless ``png=False``) the heatmap, then the provenance; return their paths.

    ``out_dir`` is created if needed (:class:`DENError` naming it when it cannot be).
    """
    if not Path(out_dir).is_dir():
        prepare_output_folder(out_dir, remove_partials=False)
    paths = check_output_names(out_dir, stem)
    if not png:
        paths["png"].unlink(missing_ok=True)
    kinds = ("json", "png", "npy") if png else ("json", "npy")  # committed in the reverse order: the .json last
    with ExitStack() as commits:
        temporary = {kind: commits.enter_context(atomic_path(paths[kind])) for kind in kinds}
        np.save(temporary["npy"], result.features, allow_pickle=False)
        if png:
            save_heatmap_png(result.features, temporary["png"], heatmap_title(stem, result.provenance),
                             heatmap_row_label(result.provenance))
        provenance = dict(result.provenance, outputs={
            kind: {"file": paths[kind].name, "sha256": file_sha256(temporary[kind])}
            for kind in ("npy", "png") if kind in temporary})
        provenance[RECORD_CHECKSUM] = record_sha256(provenance)
        temporary["json"].write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return {kind: paths[kind] for kind in ("npy", "png", "json") if kind in temporary}


def record_sha256(provenance: dict) -> str:
    """The sha256 of a provenance record without its own checksum field (keys sorted, compact JSON): a ``.json``
    edited by hand no longer matches it, so ``--resume`` and ``--merge`` do not trust it."""
    body = {key: value for key, value in provenance.items() if key != RECORD_CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def check_not_overwriting(paths: dict[str, Path], segmentation: Path, image: Path | None,
                          settings: ExtractionSettings, weights_sha256: str) -> None:
    """Refuse to replace outputs made from another input or image, or with other settings, under the same names.

    Raises :class:`DENError` naming the ``.json`` and the difference, and saying how to proceed (``--overwrite``,
    another output folder, or ``--resume`` with the same settings). Outputs of the same input and settings (a
    rerun), and damaged records (which ``--resume`` recomputes too), may be replaced.
    """
    try:
        record = json.loads(paths["json"].read_text(encoding="utf-8"))
        recorded_input = str(record["input"]["source"])
        recorded_image = (record.get("image") or {}).get("source")
        preprocessing = record["preprocessing"]
        recorded_weights = record["model"]["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    differences = []
    if recorded_input != os.path.abspath(segmentation):
        differences.append(f"another segmentation ({recorded_input})")
    if recorded_image != (os.path.abspath(image) if image is not None else None):
        differences.append(f"another image ({recorded_image or 'none'})")
    labels = "all" if settings.labels is None else list(settings.labels)
    if (preprocessing.get("mode") != settings.mode or preprocessing.get("labels") != labels
            or (settings.mode != "reference" and preprocessing.get("plane") != settings.effective_plane)):
        differences.append(f"other settings (mode {preprocessing.get('mode')}, plane {preprocessing.get('plane')}, "
                           f"labels {preprocessing.get('labels')})")
    if recorded_weights != weights_sha256:
        differences.append("other weights")
    if differences:
        raise DENError(paths["json"], f"holds results of {' and '.join(differences)} under the same name; nothing was "
                                      "computed: rerun with --overwrite to replace them, choose another output folder, "
                                      "or use --resume with the same inputs and settings")


def heatmap_title(stem: str, provenance: dict) -> str:
    """The heatmap's title: case, model, mode, plane (or the first stored axis) and whether an MRI was used."""
    preprocessing = provenance.get("preprocessing", {})
    mode = preprocessing.get("mode", "reference")
    plane = f"{preprocessing.get('plane')} plane" if mode == "oriented" else _first_stored_axis(preprocessing)
    source = "MRI inside the segmentation" if provenance.get("image") else "label values"
    return f"DEN features of {stem} ({provenance['model']['id']}; {mode} mode, {plane}; {source})"


def heatmap_row_label(provenance: dict) -> str:
    """What the heatmap's rows are: slices along which axis."""
    preprocessing = provenance.get("preprocessing", {})
    if preprocessing.get("mode") == "oriented":
        first = LOWEST_END_OF_RAS_AXIS.get(preprocessing.get("slice_axis_ras", ""), "lowest index")
        return f"{preprocessing.get('plane')} slice (row 0 = most {first})"
    anatomy = preprocessing.get("slice_axis_anatomy")
    if anatomy is None:
        return "slice along the first stored axis (row r = voxel index i = r)"
    plane, direction = anatomy.rsplit(", ", 1)
    return f"{plane} slice, {direction} (row r = voxel index i = r)"


def _first_stored_axis(preprocessing: dict) -> str:
    """Reference mode's slicing axis for a title: the first stored axis, named anatomically when that is recorded."""
    anatomy = preprocessing.get("slice_axis_anatomy")
    return f"first stored axis: {anatomy}" if anatomy else "first stored axis"
