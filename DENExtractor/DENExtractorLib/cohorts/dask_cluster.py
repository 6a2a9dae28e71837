"""``--scheduler``: a cohort's cases on a Dask cluster (``pip install -e '.[dask]'`` from a checkout).

``--scheduler tcp://HOST:PORT`` uses a cluster the user started (``dask scheduler`` / ``dask worker``,
dask-jobqueue's ``SLURMCluster``, dask-kubernetes); ``--scheduler local`` starts a ``LocalCluster`` of ``--jobs``
single-threaded worker processes on 127.0.0.1. A worker plugin builds the model once per worker (never inside a
task) and checks its weights' sha256 against the client's before the first case; each task extracts one case and
writes its outputs atomically into the shared output folder; the client reports outcomes as they arrive and writes
the cohort table. A worker lost mid-case makes the scheduler run the case again elsewhere; a case whose worker is
lost again is reported failed (the local cluster allows one retry; on your own cluster the scheduler's
``distributed.scheduler.allowed-failures`` decides, for example ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1``).
Ctrl-C starts no further case; the cases the workers are extracting finish and are reported, so the cohort table
lists every case that has outputs. The local cluster's workers leave Ctrl-C to the client, and Dask's log lines go to
``-vv`` and ``--log-file``, never to the terminal.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import distributed

from ..errors import DENError, describe_error
from ..network.runtime import available_cores
from ..settings import ExtractionSettings
from .case_worker import CaseJob, CaseWorker
from .cases import Case, CaseOutcome
from .run import run_case

PLUGIN_NAME = "den-extractor"
WORKER_PRELOAD = "DENExtractorLib.cohorts.dask_worker_process"
DASK_LOGGERS = ("distributed", "tornado")
HOLDS_SIGNALS = hasattr(signal, "pthread_sigmask")  # not on Windows, where Ctrl-C is not sent to a process group
LOCAL = "local"
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,  # a case whose worker dies twice is reported, not retried again
    "distributed.scheduler.worker-saturation": 1.0,  # a worker holds only the case it is extracting
}


logger = logging.getLogger(__name__)


class WorkerSetupFailed(Exception):
    """A worker could not build or verify the model: ``args`` are the :class:`DENError`'s source and fault."""


def run_cases_on_dask(
    cases: list[Case],
    out_dir: str | Path,
    settings: ExtractionSettings,
    *,
    scheduler: str,
    jobs: int = 2,
    resume: bool = False,
    png: bool = True,
    on_case_done: Callable[[CaseOutcome], None] | None = None,
    job: CaseJob = run_case,
) -> list[CaseOutcome]:
    """Run ``cases`` on the Dask cluster at ``scheduler`` (or a local one of ``jobs`` workers for "local");
    return their outcomes in the order of ``cases``, reporting each to ``on_case_done`` as it arrives. ``job``:
    what a worker does with each case (:data:`~.case_worker.CaseJob`).

    Raises :class:`DENError` when the scheduler cannot be reached, or a worker cannot build
    the model (for example its copy of the weights differs from the client's).
    """
    out_dir = Path(out_dir)
    with _dask_records_in_our_log(), _client(scheduler, jobs) as client:
        lanes = max(1, available_cores() // jobs) if scheduler == LOCAL else None
        plugin = DENWorkerPlugin(settings, settings.weights_identity().sha256, lanes)
        run = uuid.uuid4().hex[:12]  # task keys unique to this run: a shared scheduler may hold another run's keys
        try:
            try:
                client.register_plugin(plugin, name=PLUGIN_NAME)
            except WorkerSetupFailed as error:
                raise DENError(*error.args) from None
            futures = {
                client.submit(_extract_case, case, out_dir, resume, png, job, key=f"den-{index}-{case.case_id}-{run}", pure=False): index
                for index, case in enumerate(cases)
            }
            outcomes: list[CaseOutcome | None] = [None] * len(cases)
            reported: set[distributed.Future] = set()

            def report(done: Iterable) -> None:
                for future in done:
                    index = futures[future]
                    outcomes[index] = outcome = _outcome_of(future, cases[index])
                    reported.add(future)
                    if outcome is not None and on_case_done is not None:
                        on_case_done(outcome)

            try:
                report(distributed.as_completed(futures, loop=client.loop))
            except KeyboardInterrupt:  # every case not yet reported: finished, running, or to be cancelled
                report(_finish_cases_in_progress(client, [future for future in futures if future not in reported]))
                raise
        finally:
            client.unregister_worker_plugin(PLUGIN_NAME)
    return [outcome for outcome in outcomes if outcome is not None]


@contextmanager
def _client(scheduler: str, jobs: int) -> Iterator:
    """A client of the given scheduler, or of a local cluster started (and always closed) here."""
    if scheduler != LOCAL:
        try:
            client = distributed.Client(scheduler, set_as_default=False)  # waits distributed.comm.timeouts.connect
        except (OSError, TimeoutError, ValueError) as error:
            raise DENError(scheduler, f"cannot reach the Dask scheduler ({describe_error(error)})") from None
        with client:
            yield client
        return
    cluster, signal_mask = _start_local_cluster(jobs)
    with cluster:
        _restore_signal_mask(signal_mask)  # a Ctrl-C pressed while the cluster started arrives here: it is closed
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client


def _start_local_cluster(jobs: int) -> tuple[distributed.LocalCluster, set | None]:
    """Start a local cluster of ``jobs`` workers with Ctrl-C held back (where the platform can), so that a Ctrl-C
    cannot leave a half-started cluster behind; return it with the signal mask to restore once it can be closed.

    Threads started meanwhile (Dask's event loop and its helpers) keep SIGINT blocked, so a Ctrl-C reaches this
    process's main thread only. Worker processes start with a fresh signal mask and ignore SIGINT themselves
    (:data:`WORKER_PRELOAD`), once their imports are done: a Ctrl-C in their first second still stops them.
    """
    signal_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if HOLDS_SIGNALS else None
    try:
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None, preload=[WORKER_PRELOAD],
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})  # any free port
    except BaseException:
        _restore_signal_mask(signal_mask)
        raise
    return cluster, signal_mask


def _restore_signal_mask(signal_mask: set | None) -> None:
    """Deliver the signals held back by :func:`_start_local_cluster`."""
    if signal_mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)


@contextmanager
def _dask_records_in_our_log() -> Iterator[None]:
    """While Dask runs here: the records of its loggers, which print on stderr by themselves, become DEBUG records
    of ours instead (seen with ``-vv`` and in ``--log-file``), and its Python warnings are not shown."""
    forward = _ForwardToOurLog()
    swapped: dict[logging.Logger, list[logging.Handler]] = {}
    for name in list(logging.root.manager.loggerDict):
        dask_logger = logging.getLogger(name)
        if name.split(".")[0] in DASK_LOGGERS and dask_logger.handlers:
            swapped[dask_logger] = dask_logger.handlers[:]
            dask_logger.handlers[:] = [forward]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=rf"({'|'.join(DASK_LOGGERS)})(\.|$)")
            yield
    finally:
        for dask_logger, handlers in swapped.items():
            dask_logger.handlers[:] = handlers


class _ForwardToOurLog(logging.Handler):
    """A Dask record as a DEBUG record of this module's logger, named after the Dask logger that made it."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log the record's message again, at DEBUG, under our logger."""
        logger.debug("%s: %s", record.name, record.getMessage())


class DENWorkerPlugin(distributed.WorkerPlugin):
    """Builds the model once per worker and checks its weights before the first case; one case at a time."""

    def __init__(self, settings: ExtractionSettings, expected_sha256: str, lanes: int | None) -> None:
        """Keep what :meth:`setup` needs on the worker (``lanes``: batches run at once, None for one per core)."""
        self._keep(settings, expected_sha256, lanes)

    def _keep(self, settings: ExtractionSettings, expected_sha256: str, lanes: int | None) -> None:
        """Set the plugin's state: what travels, and the worker-side model slot, lock and stop flag."""
        self.settings, self.expected_sha256, self.lanes = settings, expected_sha256, lanes
        self.case_worker: CaseWorker | None = None
        self.lock = threading.Lock()
        self.stopped = False

    def __getstate__(self) -> dict:
        """Only the settings travel to the workers (a lock and a model cannot be pickled)."""
        return {"settings": self.settings, "expected_sha256": self.expected_sha256, "lanes": self.lanes}

    def __setstate__(self, state: dict) -> None:
        """Rebuild the plugin on the worker from :meth:`__getstate__`."""
        self._keep(state["settings"], state["expected_sha256"], state["lanes"])

    def setup(self, worker) -> None:
        """Configure TensorFlow, build the model and check its weights' sha256 against the client's."""
        gpu_slot = worker.name if isinstance(worker.name, int) else None
        try:
            self.case_worker = CaseWorker(self.settings, self.expected_sha256, lanes=self.lanes, gpu_slot=gpu_slot)
        except DENError as error:
            raise WorkerSetupFailed(error.source, f"on Dask worker {worker.address}: {error.fault}") from None

    def teardown(self, worker) -> None:
        """Let the model go when the run ends."""
        self.case_worker = None


def _extract_case(case: Case, out_dir: Path, resume: bool, png: bool, job: CaseJob) -> CaseOutcome | None:
    """A Dask task: run ``job`` (extract) on one case with this worker's model (built by the plugin), one case at a
    time; None when the run was interrupted before the case started."""
    plugin = distributed.get_worker().plugins[PLUGIN_NAME]
    if not isinstance(plugin, DENWorkerPlugin) or plugin.case_worker is None:
        raise RuntimeError(f"the {PLUGIN_NAME} plugin has not set up this worker")
    with plugin.lock:
        if plugin.stopped:  # the run was interrupted before this case started
            return None
        return plugin.case_worker.run(case, out_dir, resume=resume, png=png, job=job)


def _finish_cases_in_progress(client: distributed.Client, unfinished: list[distributed.Future]) -> Iterator:
    """After Ctrl-C: start no other case, and yield the cases not yet reported (``unfinished``) that the workers
    extracted or are extracting, as each finishes (those finished before the Ctrl-C at once).

    A worker cannot stop inside a case (the network runs in its task thread) and completes it while the cluster
    closes; reporting it keeps the cohort table in step with the outputs on disk. The workers are told first that
    no further case may start, so every case that does work is running or done when the scheduler is asked. A
    second Ctrl-C stops the wait.
    """
    client.run(_start_no_further_case)
    in_progress = {key for keys in client.processing().values() for key in keys}
    in_progress |= {key for key, workers in client.who_has(unfinished).items() if workers}
    in_progress |= {future.key for future in unfinished if future.done()}  # finished before the Ctrl-C was seen
    client.cancel([future for future in unfinished if future.key not in in_progress])
    yield from distributed.as_completed([future for future in unfinished if future.key in in_progress],
                                        loop=client.loop)


def _start_no_further_case(dask_worker: distributed.Worker) -> None:
    """Run on every worker after Ctrl-C (by ``Client.run``): a case whose task starts from now on does nothing."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if isinstance(plugin, DENWorkerPlugin):
        plugin.stopped = True


def _outcome_of(future, case: Case) -> CaseOutcome | None:
    """A finished task's outcome (None for a case not started because the run was interrupted); a lost worker or a
    task error becomes a "failed" outcome with one line."""
    try:
        return future.result()
    except distributed.KilledWorker:
        return CaseOutcome(case, "failed", f"{case.segmentation}: the Dask worker extracting this case died, and "
                                           "again on the retry (out of memory?); no output was written")
    except Exception as error:  # any fault inside one task fails only that case
        return CaseOutcome(case, "failed", f"{case.segmentation}: failed on the Dask cluster ({describe_error(error)})")
