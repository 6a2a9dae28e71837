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
from collections.abc import Callable
from pathlib import Path

from .bundled import cache_folder
from .environment import numeric_environment_key

PROBE_CACHE_NAME = "windowed-probe.json"


def probe_cache_path() -> Path:
    """The probe cache file in DEN's cache folder."""
    return cache_folder() / PROBE_CACHE_NAME


def platform_key(weights_sha256: str) -> str:
    """The key of a probe answer: what decides the kernels' bits here (:func:`environment.numeric_environment_key`:
    CPU, instruction set, threads per kernel, oneDNN switch, builds) and the weights."""
    return hashlib.sha256(f"{numeric_environment_key()}|weights {weights_sha256}".encode()).hexdigest()


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
