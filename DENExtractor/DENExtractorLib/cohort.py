"""Running DEN over many cases: finding them, skipping finished ones, surviving failures, and the cohort table."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .architecture import FEATURE_COUNT
from .atomic import write_atomically
from .errors import DENError, describe_error
from .extraction import pooled_vector
from .extractor import DENExtractor
from .outputs import check_output_names, write_outputs
from .readers import load_image, load_segmentation, strip_volume_suffix
from .resume import reusable_outputs

CASE_ID_PLACEHOLDER = "{id}"
COHORT_TABLE_NAME = "den_cohort.csv"


@dataclass(frozen=True)
class Case:
    """One case of a cohort: its id, its segmentation file and, for image mode, its MRI."""

    case_id: str
    segmentation: Path
    image: Path | None = None


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


def cases_from_files(segmentations: list[Path], images: list[Path] | None = None) -> list[Case]:
    """One case per segmentation file, named by its file name, or by its folder's name where file names collide
    (every BraTS case is ``OTMultiClass.nii.gz``); ``images`` pairs an MRI with each, in order."""
    if images and len(images) != len(segmentations):
        raise DENError(images[0], f"{len(images)} images given for {len(segmentations)} segmentations: give one per segmentation")
    stems = [strip_volume_suffix(path) for path in segmentations]
    colliding = {stem for stem in stems if stems.count(stem) > 1}
    cases = [
        Case(Path(path).absolute().parent.name if stem in colliding else stem, Path(path), Path(images[index]) if images else None)
        for index, (path, stem) in enumerate(zip(segmentations, stems))
    ]
    _refuse_duplicate_ids(cases, segmentations[0].parent)
    return cases


def run_case(case: Case, out_dir: Path, extractor: DENExtractor, *, resume: bool = False, png: bool = True) -> CaseOutcome:
    """Extract one case and write its outputs; with ``resume``, reuse complete, matching outputs instead.

    Every failure becomes a "failed" outcome with a one-line message, so one case never stops the others.
    """
    try:
        paths = check_output_names(out_dir, case.case_id)
        if resume:
            reusable = reusable_outputs(paths, case.segmentation, case.image, extractor.settings, png)
            if reusable is not None:
                return finished_outcome(case, "resumed", reusable.features, reusable.foreground_rows, reusable.paths)
        result = extractor.extract(
            load_segmentation(case.segmentation), load_image(case.image) if case.image else None
        )
        written = write_outputs(result, out_dir, case.case_id, png=png)
        return finished_outcome(case, "done", result.features, result.foreground_rows, written)
    except DENError as error:
        return CaseOutcome(case, "failed", str(error))
    except Exception as error:  # an unforeseen fault in one case must not stop the cohort
        return CaseOutcome(case, "failed", f"{case.segmentation}: could not be processed ({describe_error(error)})")


def run_cohort(
    cases: list[Case],
    out_dir: str | Path,
    extractor: DENExtractor,
    *,
    resume: bool = False,
    png: bool = True,
    on_case_done: Callable[[CaseOutcome], None] | None = None,
) -> list[CaseOutcome]:
    """Run every case in order with one extractor (its model built once, when a case first needs it).

    Each outcome is reported to ``on_case_done`` as it finishes, so a caller interrupted by Ctrl-C or SIGTERM
    (``KeyboardInterrupt``) still holds every finished case.
    """
    out_dir = Path(out_dir)
    outcomes = []
    for case in cases:
        outcome = run_case(case, out_dir, extractor, resume=resume, png=png)
        outcomes.append(outcome)
        if on_case_done is not None:
            on_case_done(outcome)
    return outcomes


def write_cohort_table(
    outcomes: list[CaseOutcome],
    path: str | Path,
    carried_columns: Sequence[str] = (),
    carried: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write the cohort CSV atomically: case id, status, message, rows, foreground rows, pooled mean and max.

    ``carried_columns`` (a cases CSV's own columns) follow the case id, each case's cells taken from
    ``carried[case_id]``.
    """
    carried = carried or {}
    header = ["case_id", *carried_columns, "status", "message", "rows", "foreground_rows"]
    header += [f"mean_{index}" for index in range(FEATURE_COUNT)] + [f"max_{index}" for index in range(FEATURE_COUNT)]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for outcome in outcomes:
                pooled = [format(float(value), ".9g") for value in outcome.pooled] if outcome.pooled is not None else []
                counts = [outcome.rows, outcome.foreground_rows] if outcome.pooled is not None else ["", ""]
                cells = carried.get(outcome.case.case_id, {})
                extra = [cells.get(name, "") for name in carried_columns]
                writer.writerow([outcome.case.case_id, *extra, outcome.status, outcome.message, *counts, *pooled])

    return write_atomically(path, write)


def finished_outcome(
    case: Case, status: str, features: np.ndarray, foreground: np.ndarray, written: dict[str, Path]
) -> CaseOutcome:
    """A successful outcome with the pooled patient-level vector (mean then max over foreground rows)."""
    pooled = pooled_vector(features, foreground)
    return CaseOutcome(case, status, "", int(features.shape[0]), int(foreground.size), pooled, written)


def _relative_files(directory: Path, depth: int | None) -> list[str]:
    """Every file under ``directory`` (no deeper than ``depth`` folders when given), as sorted POSIX relative paths.

    Linked folders are followed (cohorts are often assembled from links), each real folder once.
    """
    found = []
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
    """Translate a case pattern to a regex: glob wildcards, and ``{id}`` as one named group reused everywhere."""
    parts = []
    id_seen = False
    for token in re.split(r"(\{id\}|\*\*/|\*|\?)", pattern):
        if token == CASE_ID_PLACEHOLDER:
            parts.append("(?P=id)" if id_seen else "(?P<id>[^/]+)")
            id_seen = True
        elif token == "**/":
            parts.append("(?:.*/)?")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


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
