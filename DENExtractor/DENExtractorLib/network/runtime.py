"""How TensorFlow runs in this process: one thread inside each network kernel, batches run side by side in lanes,
which GPU, TF32 off and GPU memory growth.

**Why one thread per kernel.** TensorFlow's CPU kernels (oneDNN's convolutions, Eigen's contractions) choose how to
split a sum by the number of threads they may use: on some CPUs (measured on an AMD EPYC with AVX2 and no AVX-512)
two threads give other float32 bits than one, so the features would depend on the core count, the affinity mask
and ``--jobs``. Here every kernel runs on one thread, always, and the parallelism is across a case's batches
instead (:func:`concurrent_batches` of them at once, :mod:`DENExtractorLib.extraction.stack_features`): the
batches are fixed by the case alone, so the features are bitwise the same whatever the cores, lanes or runner. The
lanes change only the speed.

A worker process states what it wants with :func:`request_tensorflow_setup` before its model is built;
:func:`apply_tensorflow_setup` runs once, as TensorFlow is first imported (by :func:`network.import_keras`), so every
process, the one-process run included, gets the same layout. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

THREADS_PER_KERNEL = 1
"""Threads inside one network kernel, in every runner: the features do not depend on the core count."""

_requested: dict[str, int | None] = {"lanes": None, "gpu_slot": None}
_state: dict[str, Any] = {"applied": False, "threads_per_kernel": None}
"""Whether the setup was applied to TensorFlow in this process (it can be, once), and the kernel threads it got."""


def request_tensorflow_setup(*, lanes: int | None = None, gpu_slot: int | None = None) -> None:
    """Ask for a TensorFlow setup in this process, applied when TensorFlow is first imported.

    - ``lanes``: how many batches run at once (None: one per core this process may use), so that several worker
      processes share the cores without oversubscribing them. Lanes never change a feature.
    - ``gpu_slot``: with several GPUs, this process uses only GPU ``gpu_slot % count`` (one GPU per worker).
    """
    _requested.update(lanes=lanes, gpu_slot=gpu_slot)


def concurrent_batches() -> int:
    """How many batches of a case the network runs at once in this process (at least 1)."""
    lanes = _requested["lanes"]
    return max(1, lanes if lanes is not None else available_cores())


def threads_per_kernel() -> int | None:
    """The threads TensorFlow gives one kernel in this process: :data:`THREADS_PER_KERNEL` once the setup is
    applied, 0 (TensorFlow's default, one per core) where its runtime had started before, None before TensorFlow
    is imported."""
    return _state["threads_per_kernel"]


def apply_tensorflow_setup(tf: Any) -> None:
    """Apply the requested setup to the just-imported ``tensorflow`` module (the first call only).

    Kernels get :data:`THREADS_PER_KERNEL` thread and the runtime one inter-op thread per lane. TF32 is turned off,
    so GPU matrix products keep full float32 precision (GPU features stay within 1e-5 of the CPU's, relative to the
    largest feature); on a GPU, memory grows as needed instead of being taken whole. Where TensorFlow's runtime had
    already started (someone ran it before importing us), threads and GPU choice stay as they were, and
    :func:`threads_per_kernel` says so.
    """
    if _state["applied"]:
        return
    _state["applied"] = True
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS_PER_KERNEL)
        tf.config.threading.set_inter_op_parallelism_threads(concurrent_batches())
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            chosen = gpus[(_requested["gpu_slot"] or 0) % len(gpus)]
            tf.config.set_visible_devices([chosen], "GPU")
            tf.config.experimental.set_memory_growth(chosen, True)
    except RuntimeError:  # TensorFlow's runtime had started before (someone ran it before importing us)
        pass
    _state["threads_per_kernel"] = tf.config.threading.get_intra_op_parallelism_threads()


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
