"""The state a cohort worker process keeps between cases: TensorFlow set up, one extractor whose model is built
once and verified before the first case.

Used by every runner that extracts in another process (``--jobs N`` workers, Dask workers), so each worker does
exactly what the one-process run does, case by case (:func:`.run.run_case`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import DENError
from ..extraction.extractor import DENExtractor
from ..network.bundled import REFERENCE_WEIGHTS_SHA256, weights_sha256
from ..network.runtime import request_tensorflow_setup
from ..settings import ExtractionSettings
from .cases import Case, CaseOutcome
from .run import run_case

CaseJob = Callable[..., CaseOutcome]
"""What a runner does with one case: ``job(case, out_dir, extractor, resume=..., png=...)`` returns its outcome,
writing its outputs atomically. :func:`run.run_case` (extract the case) unless a stage brings its own
(``den-robustness``'s perturbed extractions); it travels to worker processes, so it must pickle: a module-level
function, or a :func:`functools.partial` of one."""


class CaseWorker:
    """One worker's extraction state: TensorFlow configured, the model built and its weights checked, once."""

    def __init__(self, settings: ExtractionSettings, expected_sha256: str, *, lanes: int | None = None,
                 gpu_slot: int | None = None) -> None:
        """Set up TensorFlow (``lanes``, ``gpu_slot``: see :func:`runtime.request_tensorflow_setup`), build the
        model and check that its weights are the ones the client expects (``expected_sha256``); raises
        :class:`DENError` for unusable or different weights."""
        request_tensorflow_setup(lanes=lanes, gpu_slot=gpu_slot)
        self.extractor = DENExtractor(settings)
        model = self.extractor.model
        if model.weights_sha256 != expected_sha256:
            raise DENError(model.weights_source, f"this worker's weights have sha256 {model.weights_sha256}, the "
                                                 f"client's {expected_sha256}: give every worker the same weights file")
        if model.weights_source == "bundled":
            found = weights_sha256(model.model.get_weights())
            if found != REFERENCE_WEIGHTS_SHA256:
                raise DENError(f"bundled weights {model.model_id}", f"the model in this worker holds weights with "
                                                                    f"sha256 {found}, expected {REFERENCE_WEIGHTS_SHA256}")

    def run(self, case: Case, out_dir: Path, *, resume: bool, png: bool, job: CaseJob = run_case) -> CaseOutcome:
        """Run ``job`` (by default: extract) on one case into ``out_dir`` exactly as a one-process run does
        (outputs written atomically)."""
        return job(case, out_dir, self.extractor, resume=resume, png=png)
