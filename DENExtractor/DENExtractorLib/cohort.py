"""Running DEN over many cases: finding them, skipping finished ones, surviving failures, and the cohort table."""

from __future__ import annotations

import csv
import glob
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .architecture import FEATURE_COUNT
from .atomic import write_atomically
from .errors import DENError, describe_error
from .extraction import extract, pooled_vector
from .network import load_model
from .outputs import output_paths, write_outputs
from .volumes import file_sha256, load_image, load_segmentation, strip_volume_suffix

CASE_ID_PLACEHOLDER = "{id}"
COHORT_TABLE_NAME = "den_cohort.csv"


@dataclass(frozen=True)
class Case:
    """One case of a cohort: its id, its segmentation file and, for image mode, its MRI."""

    case_id: str
    segmentation: Path
    image: Path | None = None


@dataclass(frozen=True)
class ExtractionSettings:
    """The choices that shape the numbers: mode, plane, weights file (None = bundled), labels kept (None = all)."""

    mode: str = "reference"
    plane: str = "axial"
    weights: Path | None = None
    labels: tuple[int, ...] | None = None
    png: bool = True


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


def find_cases(directory: str | Path, pattern: str, image_pattern: str | None = None) -> list[Case]:
    """Find one case per file matching ``pattern`` under ``directory``, sorted by case id.

    ``pattern`` is a glob relative to ``directory`` in which ``{id}`` stands for the case id and must match the
    same text wherever it appears, e.g. ``{id}_nifti/{id}_tumor_segmentation.nii.gz``. Without ``{id}`` the case
    id is the file name without its volume suffix. ``image_pattern`` (image mode) names each case's MRI the same
    way, e.g. ``{id}_nifti/{id}_flair.nii.gz``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DENError(directory, "no such cohort folder")
    matcher = _pattern_regex(pattern)
    cases = []
    for match_path in sorted(glob.glob(str(directory / pattern.replace(CASE_ID_PLACEHOLDER, "*")), recursive=True)):
        relative = Path(match_path).relative_to(directory).as_posix()
        found = matcher.fullmatch(relative)
        if found is None:
            continue
        case_id = found.group("id") if CASE_ID_PLACEHOLDER in pattern else strip_volume_suffix(match_path)
        image = directory / image_pattern.replace(CASE_ID_PLACEHOLDER, case_id) if image_pattern else None
        cases.append(Case(case_id, Path(match_path), image))
    if not cases:
        raise DENError(directory, f"no file matches the pattern {pattern!r}")
    _refuse_duplicate_ids(cases, directory)
    return sorted(cases, key=lambda case: case.case_id)


def cases_from_files(segmentations: list[Path], images: list[Path] | None = None) -> list[Case]:
    """One case per segmentation file, named by its file name; ``images`` pairs an MRI with each, in order."""
    if images and len(images) != len(segmentations):
        raise DENError(images[0], f"{len(images)} images given for {len(segmentations)} segmentations: give one per segmentation")
    cases = [
        Case(strip_volume_suffix(path), Path(path), Path(images[index]) if images else None)
        for index, path in enumerate(segmentations)
    ]
    _refuse_duplicate_ids(cases, segmentations[0].parent)
    return cases


def run_case(case: Case, out_dir: Path, settings: ExtractionSettings, resume: bool) -> CaseOutcome:
    """Extract one case and write its outputs; with ``resume``, reuse complete, matching outputs instead.

    Every failure becomes a "failed" outcome with a one-line message, so one case never stops the others.
    """
    paths = output_paths(out_dir, case.case_id)
    try:
        if resume:
            resumed = _resume(case, paths, settings)
            if resumed is not None:
                return resumed
        result = extract(
            load_segmentation(case.segmentation),
            image=load_image(case.image) if case.image else None,
            mode=settings.mode,
            plane=settings.plane,
            weights=settings.weights,
            labels=settings.labels,
        )
        written = write_outputs(result, out_dir, case.case_id, png=settings.png)
        return _outcome(case, "done", result.features, result.foreground_rows, written)
    except DENError as error:
        return CaseOutcome(case, "failed", str(error))
    except Exception as error:  # an unforeseen fault in one case must not stop the cohort
        return CaseOutcome(case, "failed", f"{case.segmentation}: unexpected {type(error).__name__}: {describe_error(error)}")


def run_cohort(
    cases: list[Case],
    out_dir: str | Path,
    settings: ExtractionSettings,
    *,
    resume: bool = False,
    on_case_done: Callable[[CaseOutcome], None] | None = None,
) -> list[CaseOutcome]:
    """Run every case in order (the model is loaded once, first), reporting each outcome as it finishes."""
    out_dir = Path(out_dir)
    load_model(settings.weights)
    outcomes = []
    for case in cases:
        outcome = run_case(case, out_dir, settings, resume)
        outcomes.append(outcome)
        if on_case_done is not None:
            on_case_done(outcome)
    return outcomes


def write_cohort_table(outcomes: list[CaseOutcome], path: str | Path) -> Path:
    """Write the cohort CSV atomically: case id, status, message, rows, foreground rows, pooled mean and max."""
    header = ["case_id", "status", "message", "rows", "foreground_rows"]
    header += [f"mean_{index}" for index in range(FEATURE_COUNT)] + [f"max_{index}" for index in range(FEATURE_COUNT)]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for outcome in outcomes:
                pooled = [format(float(value), ".9g") for value in outcome.pooled] if outcome.pooled is not None else []
                counts = [outcome.rows, outcome.foreground_rows] if outcome.pooled is not None else ["", ""]
                writer.writerow([outcome.case.case_id, outcome.status, outcome.message, *counts, *pooled])

    return write_atomically(path, write)


def _expected_weights_sha256(settings: ExtractionSettings) -> str:
    """The weights checksum that outputs made with these settings must record."""
    return load_model(settings.weights).weights_sha256


def _resume(case: Case, paths: dict[str, Path], settings: ExtractionSettings) -> CaseOutcome | None:
    """Return a "resumed" outcome if the case's outputs are complete and were made from the same inputs and settings."""
    try:
        provenance = json.loads(paths["json"].read_text(encoding="utf-8"))
        features = np.load(paths["npy"], allow_pickle=False)
    except (OSError, ValueError):
        return None
    recorded = provenance.get("preprocessing", {})
    image_record = provenance.get("image") or {}
    still_valid = (
        provenance.get("input", {}).get("sha256") == file_sha256(case.segmentation)
        and image_record.get("sha256") == (file_sha256(case.image) if case.image else None)
        and provenance.get("model", {}).get("weights_sha256") == _expected_weights_sha256(settings)
        and recorded.get("mode") == settings.mode
        and (settings.mode == "reference" or recorded.get("plane") == settings.plane)
        and recorded.get("labels") == ("all" if settings.labels is None else sorted(set(settings.labels)))
        and list(features.shape) == provenance.get("features", {}).get("shape")
        and features.dtype == np.float32
        and (paths["png"].is_file() or not settings.png)
    )
    if not still_valid:
        return None
    foreground = np.asarray(provenance["features"]["foreground_rows"], dtype=np.int64)
    written = {kind: path for kind, path in paths.items() if path.is_file()}
    return _outcome(case, "resumed", features, foreground, written)


def _outcome(case: Case, status: str, features: np.ndarray, foreground: np.ndarray, written: dict[str, Path]) -> CaseOutcome:
    """A successful outcome with the pooled patient-level vector (mean then max over foreground rows)."""
    pooled = pooled_vector(features, foreground)
    return CaseOutcome(case, status, "", int(features.shape[0]), int(foreground.size), pooled, written)


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
    """Two cases with the same id would overwrite each other's outputs: refuse them."""
    seen: dict[str, Path] = {}
    for case in cases:
        if case.case_id in seen:
            raise DENError(source, f"case id {case.case_id!r} is used by both {seen[case.case_id]} and {case.segmentation}")
        seen[case.case_id] = case.segmentation
