"""Writing a result: ``{stem}_den.npy`` (features), ``{stem}_den.png`` (heatmap), ``{stem}_den.json`` (provenance).

The three are written to temporary files first and then renamed into place together, the ``.json`` last with the
sha256 of the ``.npy`` (and ``.png``) it belongs to, so they are one unit: an interruption leaves the old set or
the new one (and at worst, within the renames, a new ``.npy`` beside an old ``.json`` that does not name it), and a
reader (and ``--resume``) trusts a ``.json`` only beside the very files it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..extraction.result import ExtractionResult
from ..hashing import file_sha256
from ..readers import strip_volume_suffix
from ..settings import ExtractionSettings
from .atomic import atomic_path
from .heatmap import save_heatmap_png
from .output_folder import prepare_output_folder
from .record import CaseRecord, case_record, read_record, write_record

OUTPUT_SUFFIX = "_den"
OUTPUT_KINDS = ("npy", "json", "png")
LOWEST_END_OF_RAS_AXIS = {"R": "left", "A": "posterior", "S": "inferior"}
"""Where row 0 of an oriented-mode stack lies: the low end of the RAS axis the slices are stacked along."""
MAX_NAME_BYTES = 255
"""Longest file name most file systems accept."""


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
    """Write the feature matrix, (unless ``png=False``) the heatmap, then the record; return their paths.

    ``out_dir`` is created if needed (:class:`DENError` naming it when it cannot be).
    """
    return write_named_outputs(result, stem, check_output_names(out_dir, stem), png=png)


def write_named_outputs(result: ExtractionResult, stem: str, paths: dict[str, Path], *, png: bool = True) -> dict[str, Path]:
    """:func:`write_outputs` to the paths :func:`check_output_names` gave for ``stem`` earlier in the same run (a
    cohort works a case's names out once, before its outputs are reused or its inputs read)."""
    out_dir = paths["npy"].parent
    if not out_dir.is_dir():
        prepare_output_folder(out_dir, remove_partials=False)
    if not png:
        paths["png"].unlink(missing_ok=True)
    kinds = ("json", "png", "npy") if png else ("json", "npy")  # committed in the reverse order: the .json last
    with ExitStack() as commits:
        temporary = {kind: commits.enter_context(atomic_path(paths[kind])) for kind in kinds}
        np.save(temporary["npy"], result.features, allow_pickle=False)
        if png:
            record = case_record(result.provenance)
            save_heatmap_png(result.features, temporary["png"], heatmap_title(stem, record), heatmap_row_label(record))
        write_record(temporary["json"], result.provenance, {
            kind: {"file": paths[kind].name, "sha256": file_sha256(temporary[kind])}
            for kind in ("npy", "png") if kind in temporary})
    return {kind: paths[kind] for kind in ("npy", "png", "json") if kind in temporary}


def check_not_overwriting(paths: dict[str, Path], segmentation: Path, image: Path | None,
                          settings: ExtractionSettings) -> None:
    """Refuse to replace outputs made from another input or image, or with other settings, under the same names.

    Raises :class:`DENError` naming the ``.json`` and the difference, and saying how to proceed. ``--overwrite`` is
    offered only when the outputs are this very case's (same segmentation and image, other settings): replacing
    another input's outputs would destroy another case's results, so then the way out is another output folder or
    another case id. Outputs of the same input and settings (a rerun), and damaged records (which ``--resume``
    recomputes too), may be replaced.
    """
    try:
        record = read_record(paths["json"])
    except DENError:
        return
    differences = []
    if record.segmentation[0] != os.path.abspath(segmentation):
        differences.append(f"another segmentation ({record.segmentation[0]})")
    recorded_image = record.image[0] if record.image is not None else None
    if recorded_image != (os.path.abspath(image) if image is not None else None):
        differences.append(f"another image ({recorded_image or 'none'})")
    another_case = bool(differences)
    wanted = settings.effective
    if record.settings != wanted:
        differences.append(f"other settings ({record.settings.describe()}; this run: {wanted.describe()})")
    if not differences:
        return
    way_out = ("choose another output folder, or name this case otherwise (a cases CSV's case_id column); "
               "--overwrite would destroy that case's results" if another_case else
               "rerun with --overwrite to replace them, choose another output folder, or use --resume with the "
               "same settings")
    raise DENError(paths["json"], f"holds results of {' and '.join(differences)} under the same name; nothing was "
                                  f"computed: {way_out}")


def heatmap_title(stem: str, record: CaseRecord) -> str:
    """The heatmap's title: the case (with its folder, where the case is named by a file name that does not name
    the patient), model, mode, plane (or the first stored axis) and whether an MRI was used."""
    settings = record.settings
    plane = f"{settings.plane} plane" if settings.mode == "oriented" else _first_stored_axis(record.preprocessing)
    source = "MRI inside the segmentation" if record.image is not None else "label values"
    return f"DEN features of {_case_name(stem, record.segmentation[0])} ({record.model_id}; {settings.mode} mode, " \
           f"{plane}; {source})"


def _case_name(stem: str, segmentation: str) -> str:
    """The case as the title names it: ``FOLDER/stem`` when the case is named by its segmentation's file name
    (``TCGA-02-0003/fusion_mav_MODELPRED``: the file name is the same for every patient), else the case id."""
    path = Path(segmentation)
    if path.parent.name and strip_volume_suffix(path) == stem:
        return f"{path.parent.name}/{stem}"
    return stem


def heatmap_row_label(record: CaseRecord) -> str:
    """What the heatmap's rows are: slices along which axis."""
    preprocessing = record.preprocessing
    if record.settings.mode == "oriented":
        first = LOWEST_END_OF_RAS_AXIS.get(preprocessing.get("slice_axis_ras", ""), "lowest index")
        return f"{record.settings.plane} slice (row 0 = most {first})"
    anatomy = preprocessing.get("slice_axis_anatomy")
    if anatomy is None:
        return "slice along the first stored axis (row r = voxel index i = r)"
    plane, direction = anatomy.rsplit(", ", 1)
    return f"{plane} slice, {direction} (row r = voxel index i = r)"


def _first_stored_axis(preprocessing: Mapping) -> str:
    """Reference mode's slicing axis for a title: the first stored axis, named anatomically when that is recorded."""
    anatomy = preprocessing.get("slice_axis_anatomy")
    return f"first stored axis: {anatomy}" if anatomy else "first stored axis"
