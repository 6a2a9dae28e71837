"""Extraction outside Slicer's process: a warm worker process, and a run the module's timer advances by polling.

:class:`BackgroundExtraction` owns one run. Its :meth:`~BackgroundExtraction.poll` does at most one bounded step
of main-thread work (one export step, or reading the worker's answers, or the final files-and-nodes step) and
never waits for the worker, so a ``qt.QTimer`` calling it keeps Slicer responsive; nothing here imports Qt or
TensorFlow. The run's phases: ``checking`` -> ``exporting`` (the inputs to a private temporary folder, see
:mod:`.export`) -> ``starting`` (the worker, unless a warm one is waiting) -> ``loading`` -> ``network`` ->
``writing`` (the worker writes into the private folder) -> ``finishing`` (files moved into the output folder,
result nodes added, in one step) -> ``done``.

Cancel is final: it kills the worker (the next run starts a fresh one) and deletes the private folder before it
returns, so no file and no node is left. The results are added only when the worker finished, nothing was
cancelled, and the scene and input node are still the ones the run started from: a closed scene or a deleted input
stops the worker at the next poll and fails the run. A worker's log is deleted when it ends normally or is
cancelled; the log of a worker that died by itself is kept, and named in the run's message, until the next run.

Like Slicer's ``launchConsoleProcess(blocking=False)`` (5.12), the worker's stdout is read by a thread into a
queue that the poll drains; unlike it, the process is kept between runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from DENExtractorLib import DENError, ExtractionCancelled, ExtractionResult, ExtractionSettings
from DENExtractorLib.extraction.result import pooled_vector
from DENExtractorLib.outputs.atomic import write_atomically
from DENExtractorLib.outputs.files import check_output_names
from DENExtractorLib.outputs.output_folder import prepare_output_folder
from DENExtractorLib.outputs.record import read_record

from .export import export_steps
from .results import ResultNodes, add_results_to_scene
from .worker import MARKER

WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")
MODULE_FOLDER = WORKER_SCRIPT.parents[1]
"""The folder holding ``DENExtractorLib`` and ``DENExtractorSlicer``, put on the worker's ``PYTHONPATH``."""

_EXPORTED = object()
"""What the export generator gives when it has finished."""

WORKER_PHASES = ("starting", "loading", "network", "writing")
"""The phases in which the worker works on the run."""

KILLED_WORKER_WAIT_SECONDS = 5.0
"""How long a cancel waits for a killed worker to end before deleting the folder it wrote into (it ends within
milliseconds of SIGKILL)."""


class WorkerPackagesMissing(DENError):
    """The worker's Python lacks a required package (for example TensorFlow): the module offers the install."""


@dataclass
class Progress:
    """Where a run is: its phase, and in ``network`` the slices done of ``total``."""

    phase: str
    done: int = 0
    total: int = 0


@dataclass
class ProcessOutcome:
    """What a finished run produced: the core's result, the nodes added to the scene and the files written."""

    result: ExtractionResult
    nodes: ResultNodes
    paths: dict[str, Path]


@dataclass
class RunRequest:
    """What one run extracts, and where the results go (the output folder already chosen)."""

    input_node: Any
    output_folder: Path
    stem: str
    segment_ids: Sequence[str] | None = None
    image_node: Any = None
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    scene: Any = None
    scale_from_case: bool = False
    """Oriented mode on a label map node: the worker sets the label scale from the exported volume's largest label
    (:func:`case_files.oriented_label_max`), a scan too slow for Slicer's main thread."""


class WorkerProcess:
    """One worker process (:mod:`.worker`) and the thread that queues its answers.

    The worker gets a private folder of its own, its temporary folder (``TMPDIR``: TensorFlow writes generated
    files there) and its log, deleted with the worker unless the worker died by itself.

    :param python: the interpreter: Slicer's ``PythonSlicer`` (in tests, ``sys.executable``).
    :param environment: the worker's environment (None: this process's); ``PYTHONPATH`` gets the module folder.
    """

    def __init__(self, python: str | Path, environment: Mapping[str, str] | None = None) -> None:
        """Start the worker; its answers arrive in :meth:`answers`."""
        self.python = str(python)
        env = dict(os.environ if environment is None else environment)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(MODULE_FOLDER), env.get("PYTHONPATH", "")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.folder = Path(tempfile.mkdtemp(prefix="den-worker-"))
        self.log = self.folder / "worker.log"
        for name in ("TMPDIR", "TEMP", "TMP"):
            env[name] = str(self.folder)
        options: dict[str, Any] = {}
        if os.name == "nt":  # no console window
            options["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                [self.python, "-u", str(WORKER_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=env, text=True, encoding="utf-8", bufsize=1, **options,
            )
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready = False
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        """Queue every answer line until the worker's stdout closes, then an ``exit`` event once the process has
        ended (this thread waits for it, never the main thread)."""
        for line in stream:
            if line.startswith(MARKER):
                try:
                    self._answers.put(json.loads(line[len(MARKER):]))
                except ValueError:
                    continue
        self._answers.put({"event": "exit", "returncode": self._process.wait()})

    def answers(self) -> Iterator[dict[str, Any]]:
        """The answers that have arrived (never waits)."""
        while True:
            try:
                answer = self._answers.get_nowait()
            except queue.Empty:
                return
            if answer.get("event") == "ready":
                self.ready = True
            yield answer

    def send(self, request: dict[str, Any]) -> None:
        """Send one request line."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()

    @property
    def alive(self) -> bool:
        """Whether the worker process is still running."""
        return self._process.poll() is None

    def exit_description(self, returncode: int | None) -> str:
        """How the worker ended by itself (its exit status or the signal that killed it), with the last line of
        its log; the log is kept, and named, until the next run."""
        if returncode is not None and returncode < 0:
            try:
                how = f"was killed by signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
            how += " (perhaps for lack of memory)" if returncode == -signal.SIGKILL else ""
        else:
            how = f"stopped with exit status {returncode}"
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            lines = []
        last = f"; last log line: {lines[-1].strip()[:200]}" if lines else ""
        _crash_folders.append(self.folder)
        return f"the worker process {how}{last}; its log is {self.log} (kept until the next run)"

    def kill(self) -> None:
        """End the worker now and delete its private folder (log and temporary files) once it has ended (within
        milliseconds of the kill), unless it had died by itself: :meth:`exit_description` keeps that folder's log
        for the user until the next run."""
        if self.alive:
            self._process.kill()
        if self.folder not in _crash_folders:
            self.wait_ended(KILLED_WORKER_WAIT_SECONDS)
            shutil.rmtree(self.folder, ignore_errors=True)

    def wait_ended(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for a killed worker to end: it may still hold files open."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=seconds)

    def close(self) -> None:
        """End the worker and wait for it (for the end of a session, not for the main thread mid-run)."""
        self.kill()
        self._process.wait()


_crash_folders: list[Path] = []
"""Private folders of workers that died by themselves (their logs named in a run's message): deleted when the next
run starts."""


class _Kept:
    """The worker kept between runs: its TensorFlow imported and its network built."""

    worker: WorkerProcess | None = None


def warm_worker(python: str | Path, environment: Mapping[str, str] | None = None) -> WorkerProcess:
    """The kept worker when it is alive and runs ``python``, else a newly started one that is kept."""
    for folder in _crash_folders:
        shutil.rmtree(folder, ignore_errors=True)
    _crash_folders.clear()
    kept = _Kept.worker
    if kept is None or not kept.alive or kept.python != str(python):
        if kept is not None:
            kept.kill()
        _Kept.worker = kept = WorkerProcess(python, environment)
    return kept


def stop_warm_worker() -> None:
    """End the kept worker (at application exit, or to free its memory)."""
    if _Kept.worker is not None:
        _Kept.worker.close()
        _Kept.worker = None


def _forget(worker: WorkerProcess) -> None:
    """Kill a worker whose run was cancelled or broken; the next run starts a fresh one."""
    worker.kill()
    if _Kept.worker is worker:
        _Kept.worker = None


def _move_file(source: Path, target: Path) -> None:
    """Move a staged file onto ``target``: a rename on the same file system, else a copy."""
    try:
        os.replace(source, target)
    except OSError:
        shutil.copyfile(source, target)


class BackgroundExtraction:
    """One extraction run, advanced by :meth:`poll` (see the module's docstring for the phases)."""

    def __init__(
        self, request: RunRequest, python: str | Path = sys.executable, environment: Mapping[str, str] | None = None
    ) -> None:
        """Prepare the run; nothing is done until the first :meth:`poll`."""
        self.request = request
        self.scene = request.scene if request.scene is not None else request.input_node.GetScene()
        self.input_id = request.input_node.GetID() if request.input_node is not None else None
        self.progress = Progress("checking")
        self.outcome: ProcessOutcome | None = None
        self.error: DENError | None = None
        self.cancelled = False
        self._python = python
        self._environment = environment
        self._folder: Path | None = None
        self._steps: Iterator[str] | None = None
        self._worker: WorkerProcess | None = None
        self._paths: dict[str, str] | None = None
        self._staged: tuple[dict[str, Path], ExtractionResult, dict[str, Path]] | None = None
        self._output: Path | None = None
        self._created_output = False
        self._answered = False

    @property
    def finished(self) -> bool:
        """Whether the run has ended (done, failed or cancelled)."""
        return self.outcome is not None or self.error is not None or self.cancelled

    def poll(self) -> Progress:
        """Do one bounded step of the run and return where it is; a finished run does nothing."""
        if self.finished:
            return self.progress
        try:
            self._step()
        except DENError as error:
            self._fail(error)
        except Exception as error:
            self._fail(DENError(self.request.input_node.GetName(), f"the extraction failed: {error}"))
            raise
        return self.progress

    def cancel(self) -> None:
        """Stop at once: kill the worker, delete the private folder; no file and no node is left."""
        if self.finished:
            return
        self.cancelled = True
        self.error = ExtractionCancelled(self._source_name())
        if self._worker is not None and self.progress.phase in WORKER_PHASES:
            _forget(self._worker)
        self._clean_up()

    def _source_name(self) -> str:
        node = self.request.input_node
        return node.GetName() if node is not None else "input"

    def _fail(self, error: DENError) -> None:
        """End the run with ``error``; a worker that was still working on it is ended (one that answered with the
        error is idle and stays warm)."""
        self.error = error
        busy = self.progress.phase in WORKER_PHASES and not self._answered
        if self._worker is not None and busy:
            _forget(self._worker)
        self._clean_up()

    def _clean_up(self) -> None:
        """Delete the private folder before returning (a killed worker is first waited for: it ends within
        milliseconds, and may hold its files open), and after a run that gave nothing, the output folder it created
        if it is still empty. Nothing is left for a thread that could die with Slicer."""
        if self._folder is not None:
            folder, self._folder = self._folder, None
            shutil.rmtree(folder, ignore_errors=True)  # a killed worker has ended: kill() waited for it
        if self.outcome is None and self._created_output and self._output is not None:
            with contextlib.suppress(OSError):  # not empty (another program wrote there) or already gone
                self._output.rmdir()

    def _step(self) -> None:
        phase = self.progress.phase
        if phase == "checking":
            self._check_still_valid()
            self._created_output = not Path(self.request.output_folder).exists()
            self._output = prepare_output_folder(self.request.output_folder)  # refused now, not after the network
            self._folder = Path(tempfile.mkdtemp(prefix="den-slicer-"))
            (self._folder / "case").mkdir()
            (self._folder / "staging").mkdir()
            request = self.request
            self._steps = export_steps(request.input_node, request.segment_ids, request.image_node,
                                       self._folder / "case")
            self.progress = Progress("exporting")
        elif phase == "exporting":
            assert self._steps is not None
            if next(self._steps, _EXPORTED) is _EXPORTED:
                self._worker = warm_worker(self._python, self._environment)
                self.progress = Progress("starting")
                self._send()
        elif phase in WORKER_PHASES:
            self._check_still_valid()  # a deleted input or a closed scene stops the worker at once
            self._read_answers()
        elif phase == "finishing" and self._staged is None:
            self._read_staged()
        elif phase == "finishing":
            self._finish()

    def _check_still_valid(self) -> None:
        """Refuse to go on when the input left the scene or the scene was closed since the run started."""
        node = self.request.input_node
        if node is None or self.scene is None or self.scene.GetNodeByID(self.input_id) is not node:
            raise DENError(self._source_name(), "the input node was removed or the scene was closed during the "
                                                "run: nothing was added")

    def _send(self) -> None:
        assert self._worker is not None and self._folder is not None
        request = self.request
        self._worker.send({
            "id": id(self), "case": str(self._folder / "case"), "staging": str(self._folder / "staging"),
            "stem": request.stem, "settings": request.settings.record(), "scale_from_case": request.scale_from_case,
        })

    def _read_answers(self) -> None:
        assert self._worker is not None
        for answer in self._worker.answers():
            event = answer.get("event")
            if event == "exit":
                raise DENError(self._source_name(), self._worker.exit_description(answer.get("returncode")))
            if answer.get("id") != id(self):
                continue
            if event == "progress":
                phase = self.progress.phase
                self.progress = Progress(answer["phase"], int(answer["done"]), int(answer["total"]))
                if self.progress.phase != phase:
                    return  # one phase a poll: the module (and a test) sees every phase
            elif event == "error":
                self._answered = True
                if answer.get("missing_package"):
                    raise WorkerPackagesMissing(answer["source"], answer["fault"])
                raise DENError(answer["source"], answer["fault"])
            elif event == "done":
                self._paths = answer["paths"]
                self.progress = Progress("finishing")
                return

    def _read_staged(self) -> None:
        """Read what the worker wrote (nothing visible happens yet: a Cancel now still leaves nothing)."""
        assert self._paths is not None
        staged = {kind: Path(path) for kind, path in self._paths.items()}
        record = read_record(staged["json"])
        features = np.load(staged["npy"], allow_pickle=False)
        foreground = record.foreground_rows
        result = ExtractionResult(features, foreground, pooled_vector(features, foreground), dict(record.provenance))
        assert self._output is not None
        self._staged = (staged, result, check_output_names(self._output, self.request.stem))

    def _finish(self) -> None:
        """Copy the staged files into the output folder and add the result nodes, in one step (nothing can come
        between the last check and the results)."""
        self._check_still_valid()
        assert self._staged is not None
        staged, result, targets = self._staged
        paths: dict[str, Path] = {}
        for kind in ("npy", "png", "json"):  # the provenance last: it names the files beside it
            if kind in staged:
                paths[kind] = write_atomically(targets[kind], functools.partial(_move_file, staged[kind]))
        nodes = add_results_to_scene(result, self.scene, self.request.input_node, self.request.stem)
        self.outcome = ProcessOutcome(result=result, nodes=nodes, paths=paths)
        rows = result.features.shape[0]
        self.progress = Progress("done", rows, rows)
        self._clean_up()
