"""``--num-parts K --part-id I``: one node's fixed share of a cohort, for cluster array jobs on shared storage.

The share rule, the same on every node: the cases (problem rows of a cases CSV included) are sorted by case id and
numbered from 0; case number ``n`` belongs to part ``n % K``. Parts are numbered ``0 .. K-1``; ``--part-id``
defaults to ``SLURM_ARRAY_TASK_ID`` (``sbatch --array=0-<K-1>``) or ``JOB_COMPLETION_INDEX`` (a Kubernetes
Indexed Job).

Every part writes the whole cohort's manifest (``den_cohort_manifest.json``: the settings, K, and every case with
its carried-through columns) and its own table (``den_cohort.part-I-of-K.csv``) into the shared output folder;
``den-extract --merge OUT`` reads them to build ``den_cohort.csv`` (see :mod:`merge`). Two parts that see a
different case list or different settings are refused, so a merged table never mixes cohorts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DENError, describe_error
from ..outputs.atomic import write_atomically
from ..readers.limits import read_bounded_json_object
from ..settings import ExtractionSettings
from .cases import Case, CohortEntry
from .cases_csv import case_id_fault

PART_ID_VARIABLES = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")
MANIFEST_NAME = "den_cohort_manifest.json"
MANIFEST_FORMAT = "den-cohort-manifest/1"
MAX_PARTS = 100_000
"""Most parts an array job may have (SLURM's own array limit is far lower)."""
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
"""Largest manifest read: about a million cases of 250 bytes each; anything larger is not one the parts wrote."""

Item = TypeVar("Item")




@dataclass(frozen=True)
class CohortManifest:
    """The whole cohort of an array job: K, the settings, whether heatmaps are drawn, the carried columns and
    every case sorted by id."""

    num_parts: int
    settings: ExtractionSettings
    png: bool
    carried_columns: tuple[str, ...]
    entries: tuple[CohortEntry, ...]


def resolve_part_id(num_parts: int, part_id: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The part this node runs: ``part_id`` if given, else the first of :data:`PART_ID_VARIABLES` set in
    ``environ``; refuse a missing or out-of-range id with one line."""
    if num_parts < 1:
        raise DENError("--num-parts", f"must be at least 1, got {num_parts}")
    source = "--part-id"
    if part_id is None:
        variable = next((name for name in PART_ID_VARIABLES if environ.get(name, "").strip()), None)
        if variable is None:
            raise DENError("--part-id", f"not given, and neither {' nor '.join(PART_ID_VARIABLES)} is set")
        source, text = variable, environ[variable].strip()
        try:
            part_id = int(text)
        except ValueError:
            raise DENError(variable, f"{text!r} is not a whole number") from None
    if not 0 <= part_id < num_parts:
        raise DENError(source, f"part {part_id} is outside 0..{num_parts - 1}: parts count from 0 "
                               f"(with SLURM, submit --array=0-{num_parts - 1})")
    return part_id


def part_share(items: Sequence[Item], num_parts: int, part_id: int, case_id: Callable[[Item], str]) -> list[Item]:
    """The items of part ``part_id`` of ``num_parts``: sorted by ``case_id``, every ``num_parts``-th from
    ``part_id`` on (item number n, from 0, goes to part n % num_parts)."""
    ordered = sorted(items, key=case_id)
    return ordered[part_id::num_parts]


def part_table_name(part_id: int, num_parts: int) -> str:
    """The file name of one part's own cohort table."""
    return f"den_cohort.part-{part_id}-of-{num_parts}.csv"


def write_manifest(out_dir: Path, manifest: CohortManifest) -> Path:
    """Write the cohort's manifest into ``out_dir``, or check that the one there (written by another part) is the
    same cohort; raise :class:`DENError` when it is not."""
    return write_shared_record(out_dir / MANIFEST_NAME, manifest_record(manifest))


def write_shared_record(path: Path, record: dict) -> Path:
    """Write the JSON ``record`` every part of an array job writes alike, or check that the one at ``path`` (written
    by another part) is the same; raise :class:`DENError` naming it when it is not."""
    if path.is_file():
        existing = read_bounded_json_object(path, MAX_MANIFEST_BYTES, "cohort manifest")
        if existing != record:
            raise DENError(path, "another part of this array job ran with a different case list, settings or "
                                 "--num-parts; run every part with the same options, or use another output folder")
        return path
    text = json.dumps(record, indent=1)
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_manifest(out_dir: Path) -> CohortManifest:
    """The manifest the parts wrote into ``out_dir``, validated like any other input: :class:`DENError` naming it
    when there is none, or it is damaged (a field of the wrong type, K outside 1..:data:`MAX_PARTS`, a case id
    that is not a plain file name, a case id twice)."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise DENError(out_dir, f"no {MANIFEST_NAME} here: run the parts (--num-parts K --part-id I) into this folder first")
    return manifest_from_record(read_bounded_json_object(path, MAX_MANIFEST_BYTES, "cohort manifest"), path)


def manifest_from_record(record: dict, path: Path) -> CohortManifest:
    """The :class:`CohortManifest` of a :func:`manifest_record` read from ``path``, every field checked."""
    try:
        if record["format"] != MANIFEST_FORMAT:
            raise DENError(path, f"unknown manifest format {record['format']!r}")
        num_parts = record["num_parts"]
        if type(num_parts) is not int or not 1 <= num_parts <= MAX_PARTS:
            raise DENError(path, f"damaged manifest: num_parts {num_parts!r} is not a whole number in 1..{MAX_PARTS}")
        settings = ExtractionSettings.from_record(_typed(record["settings"], dict, "settings", path))
        entries = tuple(_manifest_entry(entry, path) for entry in _typed(record["cases"], list, "cases", path))
        carried = tuple(_typed(name, str, "carried column", path) for name in _typed(record["carried_columns"], list,
                                                                                     "carried_columns", path))
        png = _typed(record["png"], bool, "png", path)
    except DENError as error:
        raise DENError(path, error.fault if error.source == str(path) else f"damaged manifest ({error})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DENError(path, f"damaged manifest ({describe_error(error)})") from None
    ids = [entry.case.case_id for entry in entries]
    if len(set(ids)) != len(ids):
        raise DENError(path, "damaged manifest: a case id appears twice")
    return CohortManifest(num_parts, settings, png, carried, entries)


def _manifest_entry(item: object, path: Path) -> CohortEntry:
    """One case of the manifest, its id checked to be a plain file name (outputs stay inside the folder)."""
    entry = _typed(item, dict, "case", path)
    case_id = _typed(entry["case_id"], str, "case_id", path)
    fault = case_id_fault(case_id)
    if fault:
        raise DENError(path, f"damaged manifest: {fault}")
    image, grid = entry["image"], entry.get("grid")
    problem = entry["problem"]
    labels = entry.get("labels")
    columns = _typed(entry["columns"], dict, "columns", path)
    return CohortEntry(
        Case(case_id, Path(_typed(entry["segmentation"], str, "segmentation", path)),
             Path(_typed(image, str, "image", path)) if image is not None else None,
             tuple(_typed(labels, list, "labels", path)) if labels is not None else None,
             Path(_typed(grid, str, "grid", path)) if grid is not None else None,
             *(_typed(entry.get(name), str, name, path) if entry.get(name) is not None else None
               for name in ("series", "roi"))),
        {_typed(name, str, "column", path): _typed(value, str, "cell", path) for name, value in columns.items()},
        _typed(problem, str, "problem", path) if problem is not None else None,
    )


def _typed(value: object, kind: type, what: str, path: Path) -> Any:
    """``value`` if it is a ``kind``, else :class:`DENError` naming the manifest and the field."""
    if not isinstance(value, kind):
        raise DENError(path, f"damaged manifest: {what} {str(value)[:40]!r} is not a {kind.__name__}")
    return value


def manifest_record(manifest: CohortManifest) -> dict:
    """The manifest as JSON data: settings and absolute paths, so every node compares the same thing."""
    settings = manifest.settings
    return {
        "format": MANIFEST_FORMAT,
        "num_parts": manifest.num_parts,
        "settings": settings.record(),
        "png": manifest.png,
        "carried_columns": list(manifest.carried_columns),
        "cases": [
            {
                "case_id": entry.case.case_id,
                "segmentation": _path_text(entry.case.segmentation, entry.problem is None),
                "image": _path_text(entry.case.image, entry.problem is None) if entry.case.image else None,
                "labels": list(entry.case.labels) if entry.case.labels is not None else None,
                "grid": _path_text(entry.case.grid, entry.problem is None) if entry.case.grid else None,
                "series": entry.case.series,
                "roi": entry.case.roi,
                "columns": dict(entry.columns),
                "problem": entry.problem,
            }
            for entry in sorted(manifest.entries, key=lambda entry: entry.case.case_id)
        ],
    }


def _path_text(path: Path, absolute: bool) -> str:
    """A case's path for the manifest: absolute for a runnable case (nodes may start in different folders), as
    written for a problem row (which never runs, and may have no path at all)."""
    return str(Path(path).absolute()) if absolute else str(path)
