"""The cases of a cohort: what a case is, finding cases by pattern or file list, and what happened to each."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..outputs.files import output_paths
from ..outputs.record import read_record
from ..readers import strip_volume_suffix

CASE_ID_PLACEHOLDER = "{id}"


@dataclass(frozen=True)
class Case:
    """One case of a cohort: its id, its segmentation file and, for image mode, its MRI.

    ``labels``: the label values this case keeps (a cases CSV row's pyradiomics ``Label``), or None for the run's
    own ``--labels`` setting. ``grid``: an image (a DICOM series folder) whose grid a DICOM SEG is placed on, for
    its geometry only. ``series``: the Series Instance UID read from a DICOM folder of several series; ``roi``: the
    ROI an RTSTRUCT is read for.
    """

    case_id: str
    segmentation: Path
    image: Path | None = None
    labels: tuple[int, ...] | None = None
    grid: Path | None = None
    series: str | None = None
    roi: str | None = None


@dataclass
class CaseOutcome:
    """What happened to one case: ``status`` is "done", "resumed" or "failed"."""

    case: Case
    status: str
    message: str = ""
    rows: int = 0
    foreground_rows: int = 0
    pooled: np.ndarray | None = None
    outputs: dict[str, Path] = field(default_factory=dict)


@dataclass
class FoundCases:
    """The cases a pattern found, and the hidden entries (names starting with ".") it matched but skipped."""

    cases: list[Case]
    skipped_hidden: list[str]


def find_cases(directory: str | Path, pattern: str, image_pattern: str | None = None) -> FoundCases:
    """Find one case per file matching ``pattern`` under ``directory``, sorted by case id.

    ``pattern`` is a glob relative to ``directory`` (``*``, ``?``, ``**/``) in which ``{id}`` stands for the case id
    and must match the same text wherever it appears, e.g. ``{id}_nifti/{id}_tumor_segmentation.nii.gz``. Without
    ``{id}`` the case id is the file name without its volume suffix. ``image_pattern`` (image mode) names each case's
    MRI the same way. Folder names are taken literally (``study[1]`` is fine). Entries whose path has a part starting
    with "." (hidden files, macOS ``._`` files) are skipped and listed in ``skipped_hidden``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DENError(directory, "no such cohort folder")
    matcher = _pattern_regex(pattern)
    depth = None if "**" in pattern else pattern.count("/")
    cases, hidden = [], []
    for relative in _relative_files(directory, depth):
        found = matcher.fullmatch(relative)
        if found is None:
            continue
        if any(part.startswith(".") for part in relative.split("/")):
            hidden.append(relative)
            continue
        case_id = found.group("id") if CASE_ID_PLACEHOLDER in pattern else strip_volume_suffix(relative)
        image = directory / image_pattern.replace(CASE_ID_PLACEHOLDER, case_id) if image_pattern else None
        cases.append(Case(case_id, directory / relative, image))
    if not cases:
        raise DENError(directory, f"no file matches the pattern {pattern!r}" + (f" (skipped hidden: {hidden[:3]})" if hidden else ""))
    _refuse_duplicate_ids(cases, directory)
    return FoundCases(sorted(cases, key=lambda case: case.case_id), sorted(hidden))


GENERIC_STEMS = frozenset({
    "otmulticlass", "seg", "segmentation", "segmentations", "mask", "label", "labels", "labelmap", "label_map",
    "tumor", "tumour", "lesion", "tumor_segmentation", "tumour_segmentation",
})
"""File names (without suffix, any case) that say what a file is, not whose: such a file is named by its folder."""


def cases_from_files(segmentations: list[Path], images: list[Path] | None = None,
                     grids: list[Path] | None = None, *, series: str | None = None,
                     roi: str | None = None, out_dir: Path | None = None) -> list[Case]:
    """One case per segmentation file, named by its file name, or by its folder's name where that name is not the
    patient's (:func:`file_case_ids`); ``images`` pairs an MRI with each, in order, ``grids`` a DICOM SEG's series;
    ``series`` and ``roi`` apply to every case. ``out_dir``: the run's output folder, where a file name already
    naming another segmentation's results makes this case take its folder's name too (so a second patient's
    ``fusion_mav_MODELPRED.nii.gz`` never meets the first one's outputs)."""
    if images and len(images) != len(segmentations):
        raise DENError(images[0], f"{len(images)} images given for {len(segmentations)} segmentations: give one per segmentation")
    if grids and len(grids) != len(segmentations):
        raise DENError(grids[0], f"{len(grids)} grids given for {len(segmentations)} segmentations: give one per segmentation")
    ids = file_case_ids(segmentations, out_dir)
    cases = [Case(case_id, Path(path), Path(images[index]) if images else None,
                  grid=Path(grids[index]) if grids else None, series=series, roi=roi)
             for index, (path, case_id) in enumerate(zip(segmentations, ids, strict=True))]
    _refuse_duplicate_ids(cases, segmentations[0].parent)
    return cases


def file_case_ids(segmentations: list[Path], out_dir: Path | None = None) -> list[str]:
    """The case ids of segmentation files named by their files, decided once per run: the file name without its
    volume suffix, or the folder's name where file names are equal (two TCGA patients' ``fusion_mav_MODELPRED``),
    generic (every BraTS case is ``OTMultiClass.nii.gz``: ``pat0003/OTMultiClass.nii.gz`` is ``pat0003``, also
    alone), or already name another segmentation's results in ``out_dir``."""
    stems = [strip_volume_suffix(path) for path in segmentations]
    by_folder = {stem for stem in stems if stems.count(stem) > 1 or stem.lower() in GENERIC_STEMS}
    by_folder |= {stem for stem, path in zip(stems, segmentations, strict=True)
                  if out_dir is not None and _names_other_results(out_dir, stem, path)}
    return [Path(path).absolute().parent.name if stem in by_folder else stem
            for path, stem in zip(segmentations, stems, strict=True)]


def _names_other_results(out_dir: Path, stem: str, segmentation: Path) -> bool:
    """Whether ``out_dir`` holds a readable record under ``stem`` made from another segmentation file."""
    try:
        record = read_record(output_paths(out_dir, stem)["json"])
    except (DENError, OSError):
        return False
    return record.segmentation[0] != os.path.abspath(segmentation)


def _relative_files(directory: Path, depth: int | None) -> list[str]:
    """Every file under ``directory`` (no deeper than ``depth`` folders when given), as sorted POSIX relative paths.

    Linked folders are followed (cohorts are often assembled from links), each real folder once.
    """
    found: list[str] = []
    visited: set[str] = set()
    for root, folders, files in os.walk(directory, followlinks=True):
        relative_root = Path(root).relative_to(directory)
        level = len(relative_root.parts)
        real_root = os.path.realpath(root)
        if real_root in visited:  # a symbolic link back up the tree: walked once only
            folders.clear()
            continue
        visited.add(real_root)
        if depth is not None and level >= depth:
            folders.clear()
        if depth is None or level == depth:
            found.extend((relative_root / name).as_posix() for name in files)
    return sorted(found)


def _pattern_regex(pattern: str) -> re.Pattern:
    """Translate a case pattern to a regex: glob wildcards, and ``{id}`` as one named group reused everywhere.

    Runs of ``*`` and ``?`` become one repetition, and a ``*`` between a literal and another ``*`` matches that
    literal's first occurrence without backtracking (as :mod:`fnmatch` does), so no pattern makes the folder walk
    take exponential time.
    """
    tokens = [token for token in re.split(r"(\{id\}|\*\*/|[*?]+)", pattern) if token]
    parts = []
    id_seen = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == CASE_ID_PLACEHOLDER:
            parts.append("(?P=id)" if id_seen else "(?P<id>[^/]+)")
            id_seen = True
        elif token == "**/":
            parts.append("(?:.*/)?")
        elif set(token) <= {"*", "?"}:
            repeat = f"[^/]{{{token.count('?')},}}" if "*" in token else f"[^/]{{{len(token)}}}"
            following = tokens[index + 1 : index + 3]
            if "*" in token and len(following) == 2 and _is_literal(following[0]) and "*" in following[1]:
                group = f"star{index}"
                parts.append(f"(?=(?P<{group}>{repeat}?{re.escape(following[0])}))(?P={group})")
                index += 1
            else:
                parts.append(repeat)
        else:
            parts.append(re.escape(token))
        index += 1
    return re.compile("".join(parts))


def _is_literal(token: str) -> bool:
    """Whether a pattern token is plain text (no wildcard, no ``{id}``)."""
    return token != CASE_ID_PLACEHOLDER and token != "**/" and not set(token) <= {"*", "?"}


def _refuse_duplicate_ids(cases: list[Case], source: Path) -> None:
    """Two cases with the same id would overwrite each other's outputs: refuse them, saying what to do."""
    seen: dict[str, Path] = {}
    for case in cases:
        if case.case_id in seen:
            raise DENError(
                source,
                f"case id {case.case_id!r} is used by both {seen[case.case_id]} and {case.segmentation}: "
                "rename one, or run them as a cohort with --cohort DIR --pattern '{id}/FILE'",
            )
        seen[case.case_id] = case.segmentation


@dataclass(frozen=True)
class CohortEntry:
    """One case of a cohort as every part sees it: the case, its carried-through columns, and its problem (a bad
    row of a cases CSV, which fails without running) or None."""

    case: Case
    columns: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
