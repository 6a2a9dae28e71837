"""How TensorFlow runs in this process: its thread count, which GPU, TF32 off and GPU memory growth.

A worker process states what it wants with :func:`request_tensorflow_setup` before its model is built;
:func:`apply_tensorflow_setup` runs once, as TensorFlow is first imported (by :func:`network.import_keras`), so every
process, the one-process run included, gets TF32 off and memory growth. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

_requested: dict[str, int | None] = {"threads": None, "gpu_slot": None}
_state = {"applied": False}
"""Whether the setup was applied to TensorFlow in this process (it can be, once)."""


def request_tensorflow_setup(*, threads: int | None = None, gpu_slot: int | None = None) -> None:
    """Ask for a TensorFlow setup in this process, applied when TensorFlow is first imported.

    - ``threads``: TensorFlow's intra- and inter-op thread counts (None: TensorFlow's default, all cores), so that
      several worker processes do not oversubscribe the cores.
    - ``gpu_slot``: with several GPUs, this process uses only GPU ``gpu_slot % count`` (one GPU per worker).
    """
    _requested.update(threads=threads, gpu_slot=gpu_slot)


def apply_tensorflow_setup(tf: Any) -> None:
    """Apply the requested setup to the just-imported ``tensorflow`` module (the first call only).

    TF32 is turned off, so GPU matrix products keep full float32 precision (GPU features stay within 1e-5 of the
    CPU's, relative to the largest feature); on a GPU, memory grows as needed instead of being taken whole. Where
    TensorFlow's runtime had already started, threads and GPU choice stay as they were.
    """
    if _state["applied"]:
        return
    _state["applied"] = True
    tf.config.experimental.enable_tensor_float_32_execution(False)
    threads, gpu_slot = _requested["threads"], _requested["gpu_slot"]
    try:
        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            chosen = gpus[(gpu_slot or 0) % len(gpus)]
            tf.config.set_visible_devices([chosen], "GPU")
            tf.config.experimental.set_memory_growth(chosen, True)
    except RuntimeError:  # TensorFlow's runtime had started before (someone ran it before importing us)
        pass


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
