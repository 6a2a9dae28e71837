"""The windowed network's set-up probe, answered once per platform: its answer kept in DEN's cache folder.

Whether windows give bitwise the full network's features depends on the convolution kernels TensorFlow picks, which
depend on the CPU (model and instruction sets), the TensorFlow and Keras builds, the oneDNN switch and the thread
count, not on the case. :func:`cached_probe_answer` keeps the probe's answer under a key made of all of those and
of the weights' sha256, in ``windowed-probe.json`` beside the weights cache (:func:`bundled.cache_folder`); an
unreadable or malformed file is treated as empty and rewritten. Nothing here changes a feature: the answer only
says whether a batch goes through the windows, and is the one the probe gives on this platform.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from .bundled import cache_folder
from .runtime import available_cores

PROBE_CACHE_NAME = "windowed-probe.json"


def probe_cache_path() -> Path:
    """The probe cache file in DEN's cache folder."""
    return cache_folder() / PROBE_CACHE_NAME


def platform_key(weights_sha256: str) -> str:
    """The key of a probe answer: CPU, instruction sets, system, TensorFlow, Keras, oneDNN switch, threads, weights."""
    import keras
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    parts = [
        platform.system(), platform.machine(), _cpu_identity(), f"tensorflow {tf.__version__}",
        f"keras {keras.__version__}", f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}",
        f"threads {threads or available_cores()}",
        f"weights {weights_sha256}",
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def cached_probe_answer(weights_sha256: str, probe: Callable[[], bool]) -> bool:
    """The probe's answer for this platform: from the cache if recorded, else ``probe()``, then recorded."""
    key = platform_key(weights_sha256)
    answers = _read_answers(probe_cache_path())
    if isinstance(answers.get(key), bool):
        return answers[key]
    answer = probe()
    answers[key] = answer
    _write_answers(probe_cache_path(), answers)
    return answer


def _cpu_identity() -> str:
    """The CPU's model name and instruction-set flags (from /proc/cpuinfo on Linux), or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return platform.processor()
    wanted = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith(("model name", "flags"))]
    return " ".join(wanted[:2]) or platform.processor()


def _read_answers(path: Path) -> dict:
    """The recorded answers (key -> bool); an absent, unreadable or malformed file gives none."""
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return answers if isinstance(answers, dict) else {}


def _write_answers(path: Path, answers: dict) -> None:
    """Write the answers atomically (temporary file renamed over the cache); an unwritable folder is no error."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(answers, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
