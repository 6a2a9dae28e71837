"""The state a cohort worker process keeps between cases: TensorFlow set up and the model built once, verified.

Used by every runner that extracts in another process (``--jobs N`` workers, Dask workers), so each worker does the
same thing as the one-process run, case by case.
"""

from __future__ import annotations

from pathlib import Path

from .cohort import Case, CaseOutcome, ExtractionSettings, run_case
from .errors import DENError
from .network import load_model
from .runtime import configure_tensorflow
from .weights import REFERENCE_WEIGHTS_SHA256, weights_sha256


class CaseWorker:
    """One worker's extraction state: TensorFlow configured, the model built and its weights checked, once."""

    def __init__(self, settings: ExtractionSettings, *, threads: int | None = None, gpu_slot: int | None = None) -> None:
        """Configure TensorFlow (``threads``, ``gpu_slot``: see :func:`runtime.configure_tensorflow`), build the
        model and verify its weights; raises :class:`DENError` for unusable weights."""
        self.settings = settings
        configure_tensorflow(threads=threads, gpu_slot=gpu_slot)
        self.model = load_model(settings.weights)
        verify_bundled_weights(self.model)

    def run(self, case: Case, out_dir: Path, *, resume: bool) -> CaseOutcome:
        """Extract one case into ``out_dir`` exactly as a one-process run does (outputs written atomically)."""
        return run_case(case, out_dir, self.settings, resume)


def verify_bundled_weights(loaded) -> None:
    """Check that a model meant to hold the bundled weights holds exactly them (sha256 of the arrays in the model).

    The bundled weights are generated from a seed at load time; a worker whose model was initialised any other way
    (a Keras seed gives different Dense kernels in different processes) would compute other numbers silently.
    User weights files are identified by their file's sha256, which the loader records.
    """
    if loaded.weights_source != "bundled":
        return
    found = weights_sha256(loaded.model.get_weights())
    if found != REFERENCE_WEIGHTS_SHA256:
        raise DENError(f"bundled weights {loaded.model_id}",
                       f"the model in this worker has weights with sha256 {found}, expected {REFERENCE_WEIGHTS_SHA256}")
