"""``den-robustness`` as an array job: ``--num-parts K --part-id I`` runs one part's share of the cases, then
``--merge OUT`` pools every case the parts finished.

The share rule is ``den-extract``'s (:func:`~DENExtractorLib.cohorts.parts.part_share`: cases sorted by id, case
number n to part n % K). Every part writes the run's manifest, ``den_robustness_manifest.json`` (the perturbation
plan, and K, the settings and every case as ``den-extract``'s manifest holds them), or checks that the one there is
the same: two parts that see another case list, other settings or another plan are refused. The merge takes the
cases, settings and plan from the manifest and a case's outputs only when they are intact and made from those
(:func:`~.perturbed_case.reusable_case`), as ``--resume`` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..cohorts.cases import CohortEntry
from ..cohorts.parts import (
    MAX_MANIFEST_BYTES,
    CohortManifest,
    manifest_from_record,
    manifest_record,
    part_share,
    resolve_part_id,
    write_shared_record,
)
from ..errors import DENError
from ..readers.limits import read_bounded_json_object
from ..settings import ExtractionSettings
from .case_outputs import CaseRobustness, case_paths
from .perturbations import PerturbationPlan
from .perturbed_case import reusable_case

MANIFEST_NAME = "den_robustness_manifest.json"
MANIFEST_FORMAT = "den-robustness-manifest/1"


@dataclass(frozen=True)
class RobustnessManifest:
    """The whole run of an array job: the plan, and K, the settings and every case (``cohort``)."""

    plan: PerturbationPlan
    cohort: CohortManifest


def share_for_this_part(entries: list[CohortEntry], output: Path, settings: ExtractionSettings,
                        plan: PerturbationPlan, *, num_parts: int, part_id: int | None) -> tuple[list[CohortEntry], int]:
    """Record the whole run in ``output`` and return this part's entries and its number (``part_id`` None: from
    the scheduler's environment). Raises :class:`DENError` for a bad part id or a run differing from another
    part's."""
    part = resolve_part_id(num_parts, part_id)
    cohort = CohortManifest(num_parts, settings, False, (), tuple(entries))
    write_shared_record(output / MANIFEST_NAME, {"format": MANIFEST_FORMAT, "plan": _plan_record(plan),
                                                 "cohort": manifest_record(cohort)})
    return part_share(entries, num_parts, part, lambda entry: entry.case.case_id), part


def read_manifest(out_dir: Path) -> RobustnessManifest:
    """The manifest the parts wrote into ``out_dir``, every field checked; :class:`DENError` naming it when it is
    missing or damaged."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise DENError(out_dir, f"no {MANIFEST_NAME} here: run the parts (--num-parts K --part-id I) into this "
                                "folder first")
    record = read_bounded_json_object(path, MAX_MANIFEST_BYTES, "den-robustness manifest")
    if record.get("format") != MANIFEST_FORMAT or not isinstance(record.get("cohort"), dict):
        raise DENError(path, f"not a den-robustness manifest (format {str(record.get('format'))[:40]!r})")
    return RobustnessManifest(_plan_from_record(record.get("plan"), path), manifest_from_record(record["cohort"], path))


def finished_cases(out_dir: Path, manifest: RobustnessManifest) -> tuple[list[CaseRobustness], list[str]]:
    """The manifest's cases whose outputs in ``out_dir`` are intact and made from its inputs, settings and plan
    (in case id order), and one line for every other case: its problem row, or why its outputs cannot be used."""
    finished, missing = [], []
    settings = manifest.cohort.settings
    for entry in sorted(manifest.cohort.entries, key=lambda entry: entry.case.case_id):
        if entry.problem is not None:
            missing.append(entry.problem)
            continue
        outputs = reusable_case(case_paths(out_dir, entry.case.case_id), entry.case, settings, manifest.plan)
        if outputs is None:
            missing.append(f"{entry.case.segmentation}: case {entry.case.case_id} has no intact outputs made with the "
                           "manifest's inputs, settings and plan: run its part again (with --resume)")
        else:
            finished.append(outputs)
    return finished, missing


def _plan_record(plan: PerturbationPlan) -> dict:
    """The plan's options as JSON data (what the parts compare and the merge rebuilds the plan from)."""
    return {**asdict(plan), "kinds": list(plan.kinds)}


def _plan_from_record(record: object, path: Path) -> PerturbationPlan:
    """The plan a :func:`_plan_record` describes, checked like the command line's options."""
    numbers = ("rotation_degrees", "translation_mm", "contour_cell_mm")
    try:
        if not isinstance(record, dict) or not all(isinstance(kind, str) for kind in record["kinds"]):
            raise TypeError("plan")
        if any(type(record[name]) not in (int, float) for name in numbers) or \
                any(type(record[name]) is not int for name in ("contours", "seed")):
            raise TypeError("plan")
        return PerturbationPlan(kinds=tuple(record["kinds"]), rotation_degrees=float(record["rotation_degrees"]),
                                translation_mm=float(record["translation_mm"]), contours=record["contours"],
                                contour_cell_mm=float(record["contour_cell_mm"]), seed=record["seed"])
    except (KeyError, TypeError):
        raise DENError(path, "damaged manifest: its perturbation plan is incomplete or of the wrong types") from None
    except DENError as error:
        raise DENError(path, f"damaged manifest: {error}") from None
