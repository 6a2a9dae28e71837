"""How TensorFlow runs in this process: threads, GPU choice, TF32 off, memory growth, and the device's name.

Call :func:`configure_tensorflow` once, before the first model is built (TensorFlow fixes these settings when it
starts its runtime). Nothing here imports TensorFlow at module import time.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

_configured: dict | None = None


def configure_tensorflow(*, threads: int | None = None, gpu_slot: int | None = None) -> dict:
    """Set up TensorFlow for feature extraction in this process and return the device record for provenance.

    - ``threads``: TensorFlow's intra- and inter-op thread counts (None: TensorFlow's default, all cores), so that
      several worker processes do not oversubscribe the cores.
    - ``gpu_slot``: with several GPUs, use only GPU ``gpu_slot % count`` (one GPU per worker); None uses GPU 0.
    - TF32 is always turned off, so GPU matrix products keep full float32 precision (features within 1e-5 of the
      CPU's relative to the largest feature), and GPU memory grows as needed instead of being taken whole.

    Later calls return the first call's record unchanged (TensorFlow cannot be reconfigured once started).
    """
    global _configured
    if _configured is not None:
        return _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        chosen = gpus[(gpu_slot or 0) % len(gpus)]
        tf.config.set_visible_devices([chosen], "GPU")
        tf.config.experimental.set_memory_growth(chosen, True)
        gpus = [chosen]
    tf.config.experimental.enable_tensor_float_32_execution(False)
    _configured = _device_record(tf, gpus, threads)
    return _configured


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _device_record(tf, gpus: list, threads: int | None) -> dict:
    """What runs the network: the GPU's name, or the CPU's model, with the TF32 setting and thread count."""
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return {"kind": "GPU", "name": details.get("device_name", gpus[0].name), "tf32": False}
    return {"kind": "CPU", "name": cpu_model_name(), "threads": threads or available_cores(), "tf32": False}


def cpu_model_name() -> str:
    """The processor's marketing name (``/proc/cpuinfo`` on Linux), else what the platform module reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"
