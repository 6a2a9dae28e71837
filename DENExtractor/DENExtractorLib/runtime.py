"""How TensorFlow runs in this process: its thread count, which GPU, TF32 off and GPU memory growth.

Call :func:`configure_tensorflow` before the first model is built: TensorFlow fixes threads and GPU visibility when
its runtime starts. Nothing here imports TensorFlow at module import time.
"""

from __future__ import annotations

import os

_configured = False


def configure_tensorflow(*, threads: int | None = None, gpu_slot: int | None = None) -> None:
    """Set up TensorFlow for feature extraction in this process (the first call only; later calls do nothing).

    - ``threads``: TensorFlow's intra- and inter-op thread counts (None: TensorFlow's default, all cores), so that
      several worker processes do not oversubscribe the cores.
    - ``gpu_slot``: with several GPUs, this process uses only GPU ``gpu_slot % count`` (one GPU per worker).
    - TF32 is turned off, so GPU matrix products keep full float32 precision (GPU features stay within 1e-5 of the
      CPU's, relative to the largest feature), and GPU memory grows as needed instead of being taken whole.

    Where TensorFlow's runtime has already started in this process, threads and GPU choice stay as they are.
    """
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            chosen = gpus[(gpu_slot or 0) % len(gpus)]
            tf.config.set_visible_devices([chosen], "GPU")
            tf.config.experimental.set_memory_growth(chosen, True)
    except RuntimeError:  # TensorFlow already initialised here (an in-process caller ran it first): keep its setup
        pass


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
