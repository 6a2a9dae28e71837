"""Scoring new cases with a saved classifier: class probabilities per case into a table, with provenance.

The cases CSV is the one ``den-extract --cases`` reads. The table (``CSV``) has one row per case: id, predicted
class, tumour slices, each class's probability, and the row's problem when it could not be scored (a bad file is
listed, never the end of the run). Beside it, ``CSV.json`` records the classifier (model id, training record,
weights and head sha256), the cases CSV's sha256 and every case's input sha256 and preprocessing, as extraction's
provenance does. Both are written atomically once every case is done.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..cohorts.cases_csv import read_cases_csv
from ..errors import DENError, describe_error
from ..extraction.provenance import software_versions
from ..hashing import file_sha256
from ..outputs.atomic import write_atomically
from ..outputs.output_folder import prepare_output_folder
from ..outputs.record import case_record
from .classifier import TrainedClassifier, load_classifier

SCORES_FORMAT = "den-scores/1"
SCORED_CASE_ENTRIES = ("input", "image", "settings", "preprocessing", "model")
"""The entries of a case's extraction record that the scores' provenance repeats for it."""


@dataclass(frozen=True)
class Scores:
    """What :func:`score_cohort` wrote: the table, and the ids of the cases that could not be scored."""

    table: Path
    failed: tuple[str, ...]


def score_cohort(model_dir: str | Path, cases_csv: str | Path, output: str | Path,
                 on_case: Callable[[str, str], None] | None = None) -> Scores:
    """Score every case of ``cases_csv`` with the classifier in ``model_dir``; write the table ``output`` and
    ``output.json``; return the table's path and the cases that could not be scored. ``on_case(case_id, status)``
    hears each case's outcome. The table's folder is created (or refused, :class:`DENError`) before any work."""
    output = Path(output)
    if output.is_dir():
        raise DENError(output, "is a folder: -o names the scores table (a .csv file)")
    prepare_output_folder(output.absolute().parent, remove_partials=False)
    classifier = load_classifier(model_dir)
    table = read_cases_csv(cases_csv)
    rows, cases = [], []
    for row in table.rows:
        outcome = _score_row(classifier, row)
        rows.append(outcome["row"])
        cases.append(outcome["provenance"])
        if on_case is not None:
            on_case(row.case_id, outcome["row"]["problem"] or "scored")
    _write_table(output, rows, classifier.classes)
    record = {"format": SCORES_FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "classifier": classifier.provenance, "cases_csv": {"path": str(Path(cases_csv)),
                                                                 "sha256": file_sha256(Path(cases_csv))},
              "table": {"file": output.name, "sha256": file_sha256(output)}, "cases": cases,
              "software": software_versions()}
    text = json.dumps(record, indent=1)
    write_atomically(output.with_name(output.name + ".json"), lambda path: _write_text(path, text))
    return Scores(output, tuple(row["case_id"] for row in rows if row["problem"]))


def _write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file (for :func:`write_atomically`)."""
    path.write_text(text, encoding="utf-8")


def _score_row(classifier: TrainedClassifier, row) -> dict:
    """One case's table row and provenance entry (its problem instead of probabilities when it fails)."""
    problem = row.problem
    probabilities, slices, provenance = None, 0, None
    if problem is None:
        try:
            probabilities, slices, provenance = classifier.score(row.segmentation, row.image)
        except DENError as error:
            problem = str(error)
        except Exception as error:  # one unforeseen fault must not lose the other cases
            problem = f"{row.segmentation}: could not be scored ({describe_error(error)})"
    cells = {"case_id": row.case_id, "problem": problem or "", "slices": slices, "probabilities": probabilities}
    entry = {"case_id": row.case_id, "problem": problem}
    if provenance is not None:
        record = case_record(provenance, row.segmentation)
        entry.update({name: record.provenance[name] for name in SCORED_CASE_ENTRIES})
    return {"row": cells, "provenance": entry}


def _write_table(path: Path, rows: list[dict], classes: tuple[str, ...]) -> None:
    """The scores table: case_id, predicted, slices, p_<class>..., problem."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "predicted", "slices", *(f"p_{name}" for name in classes), "problem"])
            for row in rows:
                values = row["probabilities"]
                if values is None:
                    writer.writerow([row["case_id"], "", "", *([""] * len(classes)), row["problem"]])
                else:
                    writer.writerow([row["case_id"], classes[int(np.argmax(values))], row["slices"],
                                     *(repr(float(value)) for value in values), ""])

    write_atomically(path, write)
