"""The cohort's figures, from the cases' robustness outputs on disk (so every runner, and a resumed run, gives the
same numbers): the ICC table and picture, the volume-confound table and picture, and ``den_robustness.json``
naming them, with the summary lines.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cohorts.table import FEATURE_COLUMNS
from ..dataframes import float_cell, require
from ..errors import DENError
from ..hashing import file_sha256
from ..outputs.atomic import write_atomically
from ..outputs.record import RECORD_CHECKSUM, record_sha256
from .case_outputs import CaseRobustness, case_paths, read_case
from .confound import STRONG_CORRELATION, Confound, volume_confound
from .figures import save_confound_png, save_icc_png
from .reliability import ICC_FORMS, Reliability, intraclass_correlation

ICC_TABLE = "den_robustness_icc"
CONFOUND_TABLE = "den_volume_confound"
SUMMARY_NAME = "den_robustness.json"
SUMMARY_FORMAT = "den-robustness/1"
ROBUST_ICC = 0.9
"""The ICC of the summary line: Koo and Li's "excellent"."""


@dataclass
class PooledCohort:
    """Every finished case's pooled vectors (cases, perturbed inputs, 8192), their sizes and the shared record."""

    case_ids: list[str]
    values: np.ndarray
    volume_mm3: np.ndarray
    tumour_slices: np.ndarray
    record: dict


def pool_cases(out_dir: Path, case_ids: list[str]) -> PooledCohort:
    """Read and verify the cases' outputs in ``out_dir``; raises :class:`DENError` naming a case whose plan, model
    or settings differ from the first case's (outputs of another run in the same folder)."""
    cases: list[CaseRobustness] = [read_case(case_paths(out_dir, case_id), case_id) for case_id in case_ids]
    if not cases:
        raise DENError(out_dir, "no finished case to pool")
    first = cases[0].record
    for case in cases[1:]:
        for key, what in (("plan", "perturbation plan"), ("model", "weights"), ("image", "image mode")):
            if (key == "image" and (case.record["image"] is None) != (first["image"] is None)) or (
                    key != "image" and case.record[key] != first[key]):
                raise DENError(case_paths(out_dir, case.case_id)["json"], f"was made with another {what} than "
                                                                          f"{cases[0].case_id}'s: pool one run's cases")
        if _settings_without_labels(case.record) != _settings_without_labels(first):
            raise DENError(case_paths(out_dir, case.case_id)["json"], f"was made with other settings than "
                                                                      f"{cases[0].case_id}'s: pool one run's cases")
    return PooledCohort([case.case_id for case in cases], np.stack([case.pooled for case in cases]),
                        np.array([case.tumour_volume_mm3 for case in cases]),
                        np.array([case.tumour_slices for case in cases]), first)


def _settings_without_labels(record: dict) -> dict:
    """A case record's settings but its labels (a cases CSV's ``Label`` may differ per case)."""
    return {name: value for name, value in record["settings"].items() if name != "labels"}


def write_cohort_figures(out_dir: Path, cohort: PooledCohort, *, form: str, parquet: bool) -> dict:
    """Compute the ICC and the confound, write both tables (CSV, and Parquet when asked), both pictures and
    ``den_robustness.json`` (written last, naming the others with their sha256); return that record."""
    reliability = intraclass_correlation(cohort.values, form)
    confound = volume_confound(cohort.values[:, 0], cohort.volume_mm3, cohort.tumour_slices)
    flat = cohort.values.reshape(-1, cohort.values.shape[2]).astype(np.float64)
    icc_columns = {"feature": FEATURE_COLUMNS, "form": [reliability.label] * len(FEATURE_COLUMNS),
                   "icc": reliability.icc, "ci_low": reliability.low, "ci_high": reliability.high,
                   "mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1)}
    confound_columns = {"feature": FEATURE_COLUMNS, "r_volume": confound.volume_r, "r_slices": confound.slices_r}
    written = {
        "icc_table": _write_table(out_dir / f"{ICC_TABLE}.csv", icc_columns),
        "confound_table": _write_table(out_dir / f"{CONFOUND_TABLE}.csv", confound_columns),
        "icc_png": save_icc_png(out_dir / f"{ICC_TABLE}.png", reliability, "DEN features' robustness to segmentation perturbations"),
        "confound_png": save_confound_png(out_dir / f"{CONFOUND_TABLE}.png", confound,
                                          "DEN features against the tumour's size (unperturbed segmentations)"),
    }
    if parquet:
        written["icc_parquet"] = _write_parquet(out_dir / f"{ICC_TABLE}.parquet", icc_columns)
        written["confound_parquet"] = _write_parquet(out_dir / f"{CONFOUND_TABLE}.parquet", confound_columns)
    record = _summary_record(cohort, reliability, confound, written)
    record[RECORD_CHECKSUM] = record_sha256(record)
    write_atomically(out_dir / SUMMARY_NAME,
                     lambda temporary: temporary.write_text(json.dumps(record, indent=2), encoding="utf-8"))
    return record


def _summary_record(cohort: PooledCohort, reliability: Reliability, confound: Confound, written: dict) -> dict:
    """``den_robustness.json``: what was pooled, the counts behind the summary lines, and the files."""
    features = reliability.icc.size
    robust = int(np.count_nonzero(reliability.at_least(ROBUST_ICC)))
    constant = int(np.count_nonzero(np.isnan(reliability.icc)))
    lines = [
        f"{robust} of {features} features with {reliability.label} >= {ROBUST_ICC:g} on this cohort "
        f"({len(cohort.case_ids)} cases x {reliability.raters} inputs: the original and {reliability.raters - 1} "
        f"perturbations; {constant} constant features have no ICC)",
        f"{confound.strong_share('volume'):.1%} of {features} features with |r| >= {STRONG_CORRELATION:g} against "
        f"the tumour volume, {confound.strong_share('slices'):.1%} against the number of tumour slices "
        f"({confound.cases} cases)",
    ]
    return {
        "format": SUMMARY_FORMAT,
        "cases": cohort.case_ids,
        "perturbations": [member["name"] for member in cohort.record["perturbations"]],
        "plan": cohort.record["plan"],
        "settings": _settings_without_labels(cohort.record),
        "model": cohort.record["model"],
        "icc": {"form": reliability.form, "description": ICC_FORMS[reliability.form],
                "confidence": reliability.confidence, "features": features, "constant": constant,
                "at_least": {f"{threshold:g}": int(np.count_nonzero(reliability.at_least(threshold)))
                             for threshold in (0.5, 0.75, 0.9)}},
        "confound": {"cases": confound.cases, "strong_r": STRONG_CORRELATION,
                     "volume_share": confound.strong_share("volume"), "slices_share": confound.strong_share("slices"),
                     "tumour_volume_mm3": dict(zip(cohort.case_ids, cohort.volume_mm3.tolist(), strict=True)),
                     "tumour_slices": dict(zip(cohort.case_ids, cohort.tumour_slices.tolist(), strict=True))},
        "outputs": {kind: {"file": path.name, "sha256": file_sha256(path)} for kind, path in written.items()},
        "summary": lines,
    }


def _write_table(path: Path, columns: dict) -> Path:
    """A CSV of the columns (text as is, numbers as float cells, NaN as an empty cell), written atomically."""
    names = list(columns)

    def cell(value: object) -> str:
        if isinstance(value, str):
            return value
        return "" if np.isnan(float(value)) else float_cell(float(value))  # type: ignore[arg-type]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for row in zip(*columns.values(), strict=True):
                writer.writerow([cell(value) for value in row])

    return write_atomically(path, write)


def _write_parquet(path: Path, columns: dict) -> Path:
    """The same columns as Parquet (needs pandas and pyarrow), written atomically."""
    pandas = require("pandas", "--parquet")
    require("pyarrow", "--parquet")
    frame = pandas.DataFrame(columns)
    return write_atomically(path, lambda temporary: frame.to_parquet(temporary, engine="pyarrow", index=False))


def read_summary(path: Path) -> dict:
    """An intact ``den_robustness.json`` (``path``: it, its folder, or a table beside it); raises
    :class:`DENError` naming the file when it is missing, damaged or of another format."""
    path = Path(path)
    summary = path if path.name == SUMMARY_NAME else (path if path.is_dir() else path.parent) / SUMMARY_NAME
    try:
        record = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DENError(summary, "no readable den-robustness summary here: give a den-robustness output folder or "
                                "its table") from None
    if not isinstance(record, dict) or record.get("format") != SUMMARY_FORMAT or (
            record.get(RECORD_CHECKSUM) != record_sha256(record)):
        raise DENError(summary, "not an intact den-robustness summary (edited, damaged or of another format)")
    return record
