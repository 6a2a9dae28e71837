"""``den-train --min-icc X --robustness TABLE``: the pooled features robust enough for the baseline probe, decided
on the training patients only.

The ICC is computed again from the ``den-robustness`` outputs of the training cases alone (never from the
validation or test cases, whose perturbations are also in the table's folder), in the form that run used, with the
same weights and settings as the training run; the features whose ICC reaches ``min_icc`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..settings import ExtractionSettings
from .case_outputs import case_paths
from .cohort_summary import pool_cases, read_summary
from .reliability import intraclass_correlation


@dataclass
class RobustFeatures:
    """The features kept (a boolean mask over the 8192 pooled features) and how they were chosen."""

    kept: np.ndarray
    record: dict


def robust_features(table: Path, training_cases: list[str], min_icc: float,
                    settings: ExtractionSettings) -> RobustFeatures:
    """The features whose ICC over ``training_cases`` (their den-robustness outputs beside ``table``) is at least
    ``min_icc``. Raises :class:`DENError` when the outputs are missing, made with other weights or settings, hold
    fewer than 2 training cases, or no feature passes."""
    summary = read_summary(table)
    folder = Path(table) if Path(table).is_dir() else Path(table).parent
    present = [case_id for case_id in training_cases if case_paths(folder, case_id)["json"].is_file()]
    if len(present) < 2:
        raise DENError(table, f"holds den-robustness outputs of {len(present)} of the {len(training_cases)} training "
                              "cases: the ICC needs at least 2 (run den-robustness on the training cases)")
    cohort = pool_cases(folder, present)
    expected = {name: value for name, value in settings.record().items() if name != "labels"}
    recorded = {name: value for name, value in cohort.record["settings"].items() if name != "labels"}
    if cohort.record["model"]["weights_sha256"] != settings.identity.sha256 or recorded != expected:
        raise DENError(table, "was made with other weights or settings than this training run: run den-robustness "
                              "with the same --mode, --plane, --label-max and --weights")
    reliability = intraclass_correlation(cohort.values, summary["icc"]["form"])
    kept = reliability.at_least(min_icc)
    if not kept.any():
        raise DENError(table, f"no feature reaches {reliability.label} >= {min_icc:g} on the {len(present)} training "
                              "cases: lower --min-icc")
    return RobustFeatures(kept, {
        "table": str(table), "form": reliability.label, "min_icc": min_icc, "training_cases": len(present),
        "training_cases_without_outputs": len(training_cases) - len(present),
        "inputs_per_case": int(cohort.values.shape[1]), "features_passed": int(kept.sum()),
        "features_in": int(kept.size),
    })


def describe_filter(record: dict | None) -> str:
    """The model card's sentence on the filter (empty without one)."""
    if record is None:
        return ""
    missing = record["training_cases_without_outputs"]
    return (f"; robustness filter (base weights' probe): {record['form']} >= {record['min_icc']:g} over "
            f"{record['training_cases']} training cases x {record['inputs_per_case']} inputs"
            + (f" ({missing} training cases had no den-robustness outputs)" if missing else "")
            + f" from {record['table']}: {record['features_passed']} of {record['features_in']} features passed")
