"""Running DEN over many cases: finding them, skipping finished ones, surviving failures, and the cohort table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..extractor import DENExtractor
from ..outputs.files import check_output_names, write_outputs
from ..readers import load_case
from ..result import pooled_vector
from .cases import Case, CaseOutcome
from .resume import reusable_outputs


def run_case(case: Case, out_dir: Path, extractor: DENExtractor, *, resume: bool = False, png: bool = True) -> CaseOutcome:
    """Extract one case and write its outputs; with ``resume``, reuse complete, matching outputs instead.

    Every failure becomes a "failed" outcome with a one-line message, so one case never stops the others.
    """
    try:
        paths = check_output_names(out_dir, case.case_id)
        if resume:
            settings = extractor.settings.with_labels(case.labels)
            reusable = reusable_outputs(paths, case.segmentation, case.image, settings, png)
            if reusable is not None:
                return finished_outcome(case, "resumed", reusable.features, reusable.foreground_rows, reusable.paths)
        result = extractor.extract(*load_case(case.segmentation, case.image), labels=case.labels)
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




def finished_outcome(
    case: Case, status: str, features: np.ndarray, foreground: np.ndarray, written: dict[str, Path]
) -> CaseOutcome:
    """A successful outcome with the pooled patient-level vector (mean then max over foreground rows)."""
    pooled = pooled_vector(features, foreground)
    return CaseOutcome(case, status, "", int(features.shape[0]), int(foreground.size), pooled, written)






