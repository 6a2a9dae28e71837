"""The worker process of the Slicer module: it runs the core on exported cases, one request at a time.

Started by :class:`DENExtractorSlicer.background.WorkerProcess` with Slicer's own Python (``PythonSlicer``) as a
script (``python worker.py``), so it imports neither slicer, vtk nor Qt, and TensorFlow lives here, never in
Slicer's process. It reads one JSON request per line on stdin and answers with machine-readable lines on stdout,
each ``DEN-WORKER {json}`` (anything else on stdout, e.g. a library's print, is not an answer):

* ``{"event": "ready"}`` once started;
* ``{"event": "progress", "id": n, "phase": "loading" | "network" | "writing", "done": d, "total": t}``;
* ``{"event": "done", "id": n, "paths": {"npy": ..., "json": ..., "png": ...}}`` (files in the request's staging
  folder, the provenance with a ``slicer`` entry: node, segments, transforms);
* ``{"event": "error", "id": n, "source": ..., "fault": ...}`` for bad input (a :class:`DENError`'s two parts) or
  an unexpected failure (its traceback goes to stderr, the worker's log); with ``"missing_package": name`` when
  this Python lacks a requirement (the module then offers to install it).

The extractor of each settings is kept (its network built once), so a second request does not pay TensorFlow's
start-up or the model build again: the worker stays warm between clicks.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

MARKER = "DEN-WORKER "


def send(message: dict[str, Any]) -> None:
    """Write one answer line and flush it, so the module sees it at once."""
    sys.stdout.write(MARKER + json.dumps(message) + "\n")
    sys.stdout.flush()


class Worker:
    """The worker's state: one extractor per settings (and weights file state), built on first use."""

    def __init__(self) -> None:
        """Start with no extractor."""
        self._extractors: dict[tuple, Any] = {}

    def extractor(self, settings: Any) -> Any:
        """The kept extractor of these settings; a rewritten weights file gets a new one."""
        from DENExtractorLib import DENExtractor

        weights = settings.weights
        state = None
        if weights is not None and Path(weights).exists():
            status = Path(weights).stat()
            state = (status.st_mtime_ns, status.st_size)
        key = (settings, state)
        if key not in self._extractors:
            self._extractors = {key: DENExtractor(settings)}  # one kept at a time: models are large
        return self._extractors[key]

    def handle(self, request: dict[str, Any]) -> None:
        """Run one request and answer it (``done`` or ``error``)."""
        import numpy as np
        from case_files import oriented_label_max, read_case
        from DENExtractorLib import DENError, ExtractionSettings, write_outputs

        number = request.get("id")
        try:
            send({"event": "progress", "id": number, "phase": "loading", "done": 0, "total": 0})
            segmentation, image, record = read_case(Path(request["case"]))
            settings = ExtractionSettings.from_record(request["settings"])
            if request.get("scale_from_case"):
                largest = float(np.max(segmentation.data)) if segmentation.data.size else None
                settings = replace(settings, label_max=oriented_label_max(largest))
            extractor = self.extractor(settings)
            extractor.model  # noqa: B018 - build the network (and import TensorFlow) while "loading" is shown

            def progress(done: int, total: int) -> None:
                send({"event": "progress", "id": number, "phase": "network", "done": done, "total": total})

            result = extractor.extract(segmentation, image, progress=progress)
            send({"event": "progress", "id": number, "phase": "writing", "done": 0, "total": 0})
            result.provenance["slicer"] = record
            paths = write_outputs(result, Path(request["staging"]), request["stem"])
            send({"event": "done", "id": number, "paths": {kind: str(path) for kind, path in paths.items()}})
        except DENError as error:
            send({"event": "error", "id": number, "source": error.source, "fault": error.fault})
        except ImportError as error:  # this Python lacks a requirement (TensorFlow, ...): the module offers the install
            traceback.print_exc(file=sys.stderr)
            send({"event": "error", "id": number, "source": "worker", "missing_package": error.name or str(error),
                  "fault": f"the worker's Python cannot import {error.name or error}: the required packages are not "
                           "installed"})
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            send({"event": "error", "id": number, "source": "worker", "fault": f"failed unexpectedly: {error}"})


def main() -> int:
    """Answer requests until stdin closes."""
    worker = Worker()
    send({"event": "ready"})
    for line in sys.stdin:
        if line.strip():
            worker.handle(json.loads(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
