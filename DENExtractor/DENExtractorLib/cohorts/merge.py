"""``den-extract --merge OUT``: the cohort table of an array job, built from the per-case outputs its parts wrote.

Every case of the manifest (see :mod:`parts`) is checked the way ``--resume`` checks it (outputs complete, their
checksums intact, made from the same input bytes, weights and settings); its table row is then exactly the row a
one-process run writes. A case without such outputs is listed as missing, with the failure its part reported if
there is one. No network is built: merging needs no TensorFlow.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import DENError
from ..outputs.atomic import remove_leftover_partials
from ..outputs.files import output_paths
from .cases import CaseOutcome, CohortEntry
from .parts import CohortManifest, part_table_name, read_manifest
from .resume import reusable_outputs
from .run import finished_outcome
from .table import COHORT_TABLE_NAME, write_cohort_table


@dataclass
class MergeResult:
    """Every case's outcome in case-id order ("done" or "failed"), the table written, and the cases missing."""

    outcomes: list[CaseOutcome]
    table: Path

    @property
    def missing(self) -> list[CaseOutcome]:
        """The cases without complete, valid outputs (each with its one-line reason)."""
        return [outcome for outcome in self.outcomes if outcome.status != "done"]


def merge_parts(out_dir: str | Path) -> MergeResult:
    """Check every case of the array job in ``out_dir`` and write ``den_cohort.csv`` there (atomically).

    Raises :class:`DENError` when ``out_dir`` holds no manifest (no part has run there) or a damaged one.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise DENError(out_dir, "no such output folder")
    manifest = read_manifest(out_dir)
    remove_leftover_partials(out_dir, every_host=True)  # the array has finished: no part is still writing
    reported = _failures_reported_by_parts(out_dir, manifest.num_parts)
    outcomes = [
        _merged_outcome(entry, number % manifest.num_parts, manifest, out_dir, reported)
        for number, entry in enumerate(manifest.entries)
    ]
    carried = {entry.case.case_id: entry.columns for entry in manifest.entries}
    table = write_cohort_table(outcomes, out_dir / COHORT_TABLE_NAME, manifest.carried_columns, carried,
                               manifest.settings)
    return MergeResult(outcomes, table)


def _merged_outcome(entry: CohortEntry, part: int, manifest: CohortManifest, out_dir: Path,
                    reported: dict[str, str]) -> CaseOutcome:
    """A case's row: "done" from its verified outputs, else "failed" with why."""
    case = entry.case
    if entry.problem is not None:
        return CaseOutcome(case, "failed", entry.problem)
    reusable = reusable_outputs(output_paths(out_dir, case.case_id), case.segmentation, case.image,
                                manifest.settings.with_labels(case.labels), manifest.png, case.grid,
                                series=case.series, roi=case.roi)
    if reusable is None:
        message = reported.get(case.case_id) or (
            f"{case.segmentation}: no complete, valid output in {out_dir} "
            f"(part {part} of {manifest.num_parts} has not finished this case: rerun that part with --resume)")
        return CaseOutcome(case, "failed", message)
    return finished_outcome(case, "done", reusable.features, reusable.foreground_rows, reusable.paths)


def _failures_reported_by_parts(out_dir: Path, num_parts: int) -> dict[str, str]:
    """The failure message of every case a part's own table reports as failed."""
    messages = {}
    for path in sorted(out_dir.glob(part_table_name(0, num_parts).replace("-0-", "-*-"))):
        if not path.is_file():
            continue
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if row.get("status") == "failed" and row.get("message"):
                        messages[row["case_id"]] = row["message"]
        except (OSError, UnicodeDecodeError, csv.Error):
            continue  # a damaged part table only loses its messages; the outputs decide
    return messages
