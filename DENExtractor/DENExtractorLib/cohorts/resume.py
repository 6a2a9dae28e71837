"""Deciding whether a case's earlier outputs can be reused (``--resume``).

A case's outputs are one unit: the ``.json`` (written last) records the sha256 of the ``.npy`` and ``.png`` beside
it. They are reused only when that record is intact, names the very files present, and was made from the same
input bytes, image and settings (weights included: ``record.settings == settings.effective``, the comparison the
overwrite guard makes too). Anything damaged, missing or different means "recompute", never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hashing import file_sha256
from ..network.architecture import FEATURE_COUNT
from ..outputs.files import check_not_overwriting, output_paths
from ..outputs.record import read_record
from ..readers import source_sha256
from ..settings import ExtractionSettings
from .cases import CohortEntry


@dataclass
class ReusableOutputs:
    """Earlier outputs verified to be complete and made from the same inputs and settings."""

    features: np.ndarray
    foreground_rows: np.ndarray
    paths: dict[str, Path]


def reusable_outputs(
    paths: dict[str, Path], segmentation: Path, image: Path | None, settings: ExtractionSettings, png: bool,
    grid: Path | None = None, *, series: str | None = None, roi: str | None = None,
) -> ReusableOutputs | None:
    """Return the verified earlier outputs of a case, or None when it must be recomputed (``series``, ``roi``: the
    DICOM series and RTSTRUCT ROI the case chooses)."""
    try:
        return _verified(paths, segmentation, image, settings, png, grid, series, roi)
    except Exception:  # any damage to old outputs (bad JSON shapes, truncated .npy...) means: recompute
        return None


def _verified(
    paths: dict[str, Path], segmentation: Path, image: Path | None, settings: ExtractionSettings, png: bool,
    grid: Path | None, series: str | None, roi: str | None,
) -> ReusableOutputs | None:
    """The checks of :func:`reusable_outputs`; may raise on damaged files."""
    if not paths["json"].is_file() or not paths["npy"].is_file():
        return None
    record = read_record(paths["json"])
    if not record.intact:
        return None  # edited by hand, or written before records carried their checksum
    wanted = ("npy", "png") if png else ("npy",)
    for kind in wanted:
        if file_sha256(paths[kind]) != record.outputs[kind]["sha256"]:
            return None
    same_inputs = (
        record.settings == settings.effective
        and record.segmentation[1] == source_sha256(segmentation)
        and (record.image[1] if record.image is not None else None) == (source_sha256(image, series) if image else None)
        and record.grid_sha256 == (source_sha256(grid, series) if grid else None)
        and (roi is None or record.segments == [{"number": 1, "label": roi}])
    )
    if not same_inputs:
        return None
    features = np.load(paths["npy"], allow_pickle=False)
    foreground = record.foreground_rows
    valid_matrix = (
        features.dtype == np.float32
        and features.ndim == 2
        and features.shape[1] == FEATURE_COUNT
        and features.shape == record.feature_shape
        and foreground.ndim == 1
        and foreground.size > 0
        and int(foreground.min()) >= 0
        and int(foreground.max()) < features.shape[0]
    )
    if not valid_matrix:
        return None
    return ReusableOutputs(features, foreground, {kind: paths[kind] for kind in (*wanted, "json")})


def refuse_overwrites(entries: list[CohortEntry], out_dir: Path, settings: ExtractionSettings) -> None:
    """Before any work: refuse (:class:`DENError`, exit 2) when ``out_dir`` holds another input's or other settings'
    outputs under the name of one of these cases (see :func:`~DENExtractorLib.outputs.files.check_not_overwriting`)."""
    for entry in entries:
        paths = output_paths(out_dir, entry.case.case_id)
        if entry.problem is not None or not _is_file(paths["json"]):
            continue
        case_settings = settings.with_labels(entry.case.labels)  # a cases CSV row's own Label
        check_not_overwriting(paths, entry.case.segmentation, entry.case.image, case_settings)



def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the file system cannot hold (that case fails on its own)."""
    try:
        return path.is_file()
    except OSError:
        return False
