"""One case of ``den-robustness``: read once, every perturbation of the plan extracted with the one model, the
pooled vectors and their record written together; with resume, complete outputs of the same inputs, settings,
weights and plan are reused instead.

:func:`run_perturbed_case` is a cohort runner's case job (see :data:`~DENExtractorLib.cohorts.case_worker.CaseJob`),
so this process, ``--jobs N`` workers and Dask workers run it the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..cohorts.cases import Case, CaseOutcome
from ..errors import DENError, describe_error
from ..extraction.extractor import DENExtractor
from ..extraction.provenance import software_versions
from ..readers import load_case, source_sha256
from ..settings import ExtractionSettings
from ..volume import Volume, select_labels
from .case_outputs import CASE_FORMAT, CaseRobustness, case_paths, read_case, write_case
from .perturbations import PerturbationPlan, label_sha256, perturb, tumour_volume_mm3


def run_perturbed_case(case: Case, out_dir: Path, extractor: DENExtractor, *, resume: bool, png: bool,
                       plan: PerturbationPlan) -> CaseOutcome:
    """Extract every perturbation of ``plan`` for ``case`` and write its robustness outputs into ``out_dir``
    (``png`` is ignored: no pictures per case). Every failure is a "failed" outcome with one line."""
    try:
        paths = case_paths(out_dir, case.case_id)
        settings = extractor.settings.with_labels(case.labels)
        if resume:
            reused = reusable_case(paths, case, settings, plan)
            if reused is not None:
                return _outcome(case, "resumed", reused.record, paths)
        segmentation, image = load_case(case.segmentation, case.image)
        pooled, record = _extract_perturbations(case, segmentation, image, extractor, settings, plan)
        write_case(paths, pooled, record)
        return _outcome(case, "done", record, paths)
    except Exception as error:  # one case's fault never stops the cohort
        message = str(error) if isinstance(error, DENError) else (
            f"{case.segmentation}: could not be processed ({describe_error(error)})")
        return CaseOutcome(case, "failed", message)


def _extract_perturbations(case: Case, segmentation: Volume, image: Volume | None, extractor: DENExtractor,
                           settings: ExtractionSettings, plan: PerturbationPlan) -> tuple[np.ndarray, dict]:
    """The pooled vector of every perturbed input (the labels kept first, then perturbed), and the case's record."""
    kept = segmentation if settings.labels is None else select_labels(segmentation, settings.labels)
    pooled, members = [], []
    for perturbation in plan.perturbations():
        started = time.perf_counter()
        perturbed = perturb(kept, perturbation)
        result = extractor.extract(perturbed, image, labels=case.labels)
        pooled.append(result.pooled)
        members.append({**perturbation.record(), "name": perturbation.name,
                        "label_sha256": label_sha256(perturbed.data),
                        "tumour_volume_mm3": tumour_volume_mm3(perturbed),
                        "tumour_slices": int(result.foreground_rows.size),
                        "seconds": round(time.perf_counter() - started, 3)})
    model = extractor.model
    record = {
        "format": CASE_FORMAT,
        "case_id": case.case_id,
        "input": {"source": str(Path(case.segmentation).absolute()), "sha256": segmentation.sha256},
        "image": None if image is None else {"source": str(Path(case.image or "").absolute()), "sha256": image.sha256},
        "settings": settings.record(),
        "model": {"id": model.model_id, "weights_sha256": model.weights_sha256},
        "plan": plan.record(),
        "perturbations": members,
        "pooled": "row p: mean then max over the tumour slices of perturbed input p (8192 values), in plan order",
        "rebuild": "DENExtractorLib.robustness.rebuild_perturbation(segmentation, record['perturbations'][p], "
                   "labels=record['settings']['labels'])",
        "software": software_versions(),
    }
    return np.stack(pooled), record


def reusable_case(paths: dict[str, Path], case: Case, settings: ExtractionSettings,
                  plan: PerturbationPlan) -> CaseRobustness | None:
    """The case's earlier outputs when they are intact and made from the same input bytes, image, settings,
    weights and plan; None when it must be computed (anything missing, damaged or different)."""
    if not paths["json"].is_file():
        return None
    try:
        earlier = read_case(paths, case.case_id)
        record = earlier.record
        same = (record["input"]["sha256"] == source_sha256(case.segmentation)
                and (record["image"] or {}).get("sha256") == (source_sha256(case.image) if case.image else None)
                and record["settings"] == settings.record()
                and record["model"]["weights_sha256"] == settings.identity.sha256
                and record["plan"] == plan.record())
    except (DENError, KeyError, TypeError, AttributeError):
        return None
    return earlier if same else None


def _outcome(case: Case, status: str, record: dict, paths: dict[str, Path]) -> CaseOutcome:
    """A finished case: ``rows`` counts its perturbed inputs, ``foreground_rows`` the original's tumour slices."""
    members = record["perturbations"]
    return CaseOutcome(case, status, "", len(members), int(members[0]["tumour_slices"]), None, dict(paths))
