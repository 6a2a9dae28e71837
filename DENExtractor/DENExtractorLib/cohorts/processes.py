"""``--jobs N``: a cohort's cases in N worker processes on one machine.

Workers are started with the **spawn** method (TensorFlow is not fork-safe: a forked child of a process that has
used TensorFlow can hang), each builds the model once and limits TensorFlow to its share of the cores. The parent
hands out one case at a time, so it always knows which case each worker holds: a worker that dies (killed, out of
memory) fails only that case, and a fresh worker takes over the remaining ones. Each worker writes its case's
outputs atomically; the parent reports each outcome as it arrives and returns them in the cases' order, so the
cohort table is the same as a one-process run's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from ..errors import DENError
from ..network.runtime import available_cores
from ..settings import ExtractionSettings
from .case_worker import CaseJob, CaseWorker
from .cases import Case, CaseOutcome
from .run import run_case

SPAWN = multiprocessing.get_context("spawn")
STOP_SECONDS = 10.0


@dataclass
class _Worker:
    """A worker process, the parent's end of its pipe, and the index of the case it holds (None when idle)."""

    process: multiprocessing.process.BaseProcess
    connection: Connection
    case_index: int | None = None

    @property
    def held_case(self) -> int:
        """The index of the case this busy worker holds."""
        if self.case_index is None:
            raise RuntimeError(f"{self.process.name} holds no case")
        return self.case_index


def run_cases_in_processes(
    cases: list[Case],
    out_dir: str | Path,
    settings: ExtractionSettings,
    *,
    jobs: int,
    resume: bool = False,
    png: bool = True,
    on_case_done: Callable[[CaseOutcome], None] | None = None,
    job: CaseJob = run_case,
) -> list[CaseOutcome]:
    """Run ``cases`` in ``jobs`` spawned worker processes; return their outcomes in the order of ``cases``.

    ``resume`` and ``png`` mean what they mean for :func:`.run.run_case`; ``job`` is what a worker does with each
    case (:data:`~.case_worker.CaseJob`). ``on_case_done`` is called in this process as each case finishes. Raises
    :class:`DENError` if a worker cannot build the model (for example an unusable weights file), after stopping every
    worker.
    """
    if jobs < 1:
        raise DENError("--jobs", f"needs at least 1 worker, got {jobs}")
    out_dir = Path(out_dir)
    task_options = (out_dir, resume, png, job)
    start = (settings, settings.weights_identity().sha256, max(1, available_cores() // jobs))
    outcomes: list[CaseOutcome | None] = [None] * len(cases)
    waiting = deque(range(len(cases)))
    workers: list[_Worker] = []
    try:
        for slot in range(min(jobs, len(cases))):
            workers.append(_start_worker(*start, slot))
            _hand_out(workers[-1], waiting, cases, task_options)
        while any(worker.case_index is not None for worker in workers):
            busy = [worker for worker in workers if worker.case_index is not None]
            wait([worker.connection for worker in busy] + [worker.process.sentinel for worker in busy])
            for worker in busy:
                outcome = _collect(worker, cases)
                if outcome is None:
                    continue
                outcomes[worker.held_case] = outcome
                worker.case_index = None
                if on_case_done is not None:
                    on_case_done(outcome)
                idle = worker
                if not worker.process.is_alive() and waiting:
                    slot = workers.index(worker)
                    workers[slot] = idle = _start_worker(*start, slot)
                _hand_out(idle, waiting, cases, task_options)
    except BaseException:  # Ctrl-C, SIGTERM or a worker that cannot build the model: stop now, not after the case
        _stop(workers, at_once=True)
        raise
    _stop(workers, at_once=False)
    return [outcome for outcome in outcomes if outcome is not None]


def _start_worker(settings: ExtractionSettings, expected_sha256: str, lanes: int, slot: int) -> _Worker:
    """Spawn one worker process with its own pipe."""
    parent_end, child_end = SPAWN.Pipe()
    process = SPAWN.Process(target=_worker_main, args=(child_end, settings, expected_sha256, lanes, slot), daemon=True,
                            name=f"den-worker-{slot}")
    process.start()
    child_end.close()
    return _Worker(process, parent_end)


def _hand_out(worker: _Worker, waiting: deque, cases: list[Case], task_options: tuple[Path, bool, bool, CaseJob],
              ) -> None:
    """Give an idle worker the next waiting case, if any, with the output folder, ``resume``, ``png`` and the job."""
    if waiting:
        worker.case_index = index = waiting.popleft()
        with contextlib.suppress(OSError):  # the worker died just now: the main loop sees its exit and fails this case
            worker.connection.send((cases[index], *task_options))


def _collect(worker: _Worker, cases: list[Case]) -> CaseOutcome | None:
    """The outcome of a busy worker's case if it is over (finished, or the worker died), else None."""
    case = cases[worker.held_case]
    if worker.connection.poll():
        try:
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            return _died(worker, case)
        if kind == "fatal":
            raise payload
        return payload
    if not worker.process.is_alive():
        return _died(worker, case)
    return None


def _died(worker: _Worker, case: Case) -> CaseOutcome:
    """A failed outcome for the case of a worker that died (its temporary files, if any, are removed by the next
    run's output-folder check)."""
    worker.process.join(STOP_SECONDS)
    code = worker.process.exitcode
    if code is not None and code < 0:
        try:
            cause = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            cause = f"killed by signal {-code}"
        if -code == signal.SIGKILL:
            cause += ", perhaps for lack of memory"
    else:
        cause = f"exit code {code}"
    message = f"{case.segmentation}: the worker process extracting this case died ({cause}); no output was written"
    return CaseOutcome(case, "failed", message)


def _stop(workers: list[_Worker], *, at_once: bool) -> None:
    """Ask every worker to finish (or, ``at_once``, terminate them), then terminate any still running after a few
    seconds."""
    for worker in workers:
        with contextlib.suppress(OSError, ValueError):
            worker.connection.send(None)
        if at_once and worker.process.is_alive():
            worker.process.terminate()
    for worker in workers:
        worker.process.join(STOP_SECONDS)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(STOP_SECONDS)
        worker.connection.close()


def _worker_main(connection: Connection, settings: ExtractionSettings, expected_sha256: str, lanes: int,
                 slot: int) -> None:
    """A worker process: build the model once, then extract the cases the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (Ctrl-C reaches the whole group)
    signal.signal(signal.SIGTERM, _stop_case)  # the parent's terminate(): end the case, removing its temporaries
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        try:
            worker = CaseWorker(settings, expected_sha256, lanes=lanes, gpu_slot=slot)
        except DENError as error:
            connection.send(("fatal", error))
            return
        while (task := connection.recv()) is not None:
            case, out_dir, resume, png, job = task
            connection.send(("outcome", worker.run(case, out_dir, resume=resume, png=png, job=job)))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):  # stopped, or the parent is gone
        return


def _stop_case(signal_number: int, frame: object) -> None:
    """SIGTERM in a worker unwinds the case like Ctrl-C does, so atomic writes delete their temporary files."""
    raise KeyboardInterrupt
