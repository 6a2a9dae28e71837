"""Loaded by every worker process of ``--scheduler local`` before the worker starts (a Dask preload module).

Such workers are children of den-extract, in its process group: a Ctrl-C in the terminal reaches them too. The
client decides when a run stops and closes the cluster; a worker stopped by the signal itself would print Dask's
tracebacks and lose its case. Dask's own log lines are the client's to show (its outcome line says what happened
to each case), so a worker's are kept off the terminal.
"""

from __future__ import annotations

import logging
import signal


def dask_setup(worker: object) -> None:
    """Called by Dask in the worker process, on its main thread: ignore Ctrl-C, keep Dask's records quiet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
