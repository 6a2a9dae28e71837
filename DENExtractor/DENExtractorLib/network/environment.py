"""What the features' bits depend on: the CPU, the instruction set the kernels use, the thread layout, the builds.

The same input and weights give bitwise the same features on one machine whatever the runner or core count (each
network kernel runs on one thread: :mod:`runtime`). Across machines they can differ in the last bits, because
oneDNN's and Eigen's kernels pick their blockings (the order in which a sum is added) from the instruction set and the
CPU's caches. :func:`numeric_environment` describes all of that for the provenance record, and
:func:`numeric_environment_key` condenses the parts that decide the bits into one key: two runs with the same key
give the same bits, and two runs that differ can be told apart by reading their records.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from functools import lru_cache
from typing import Any

from .runtime import concurrent_batches, threads_per_kernel

INSTRUCTION_SETS = (
    ("sse41", ("sse4_1",)),
    ("avx", ("avx",)),
    ("avx2", ("avx2", "fma")),
    ("avx512_core", ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
)
"""oneDNN's instruction-set levels that change float32 kernels, lowest first, with the CPU flags each needs (the
bf16, int8 and AMX levels above AVX-512 leave float32 convolutions as AVX-512 computes them)."""

ONEDNN_CAP_LEVELS = {"SSE41": "sse41", "AVX": "avx", "AVX2": "avx2", "AVX2_VNNI": "avx2", "AVX2_VNNI_2": "avx2"}
"""``ONEDNN_MAX_CPU_ISA`` values below AVX-512 and the level they cap float32 kernels at (any AVX512_* value, ALL or
DEFAULT leaves the CPU's own level)."""


@lru_cache(maxsize=1)
def cpu_identity() -> dict[str, str]:
    """The CPU's vendor, model name, family and model number, and its instruction-set flags (Linux's
    /proc/cpuinfo; elsewhere what :mod:`platform` knows, without flags)."""
    fields = {"vendor_id": "", "model name": "", "cpu family": "", "model": "", "flags": ""}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name in fields and not fields[name]:
                    fields[name] = value.strip()
                if not line.strip() and fields["flags"]:  # the first processor's block is enough
                    break
    except OSError:
        pass
    return {
        "vendor": fields["vendor_id"] or platform.machine(),
        "model": fields["model name"] or platform.processor() or platform.machine(),
        "family": fields["cpu family"],
        "model_number": fields["model"],
        "flags": fields["flags"],
    }


def kernel_instruction_set() -> str:
    """The instruction-set level oneDNN's float32 kernels use here: the CPU's highest, lowered by
    ``ONEDNN_MAX_CPU_ISA`` where that is set (``unknown`` where the CPU's flags cannot be read)."""
    flags = set(cpu_identity()["flags"].split())
    if not flags:
        return "unknown"
    level = "none"
    for name, needed in INSTRUCTION_SETS:
        if flags.issuperset(needed):
            level = name
    cap = ONEDNN_CAP_LEVELS.get(os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper())
    names = [name for name, _ in INSTRUCTION_SETS]
    if cap is not None and level in names and names.index(cap) < names.index(level):
        return cap
    return level


def numeric_environment() -> dict[str, Any]:
    """The provenance record's ``compute`` entry: the device, the CPU, the kernels' instruction set, the network's
    thread layout and the switches and builds that move float32 bits; ``bits_key`` condenses the parts that decide
    them (:func:`numeric_environment_key`)."""
    cpu = cpu_identity()
    gpu = _gpu_name()
    instruction_set = kernel_instruction_set()
    return {
        "device": gpu or f"CPU: {cpu['model']}",
        "cpu": {key: cpu[key] for key in ("vendor", "model", "family", "model_number")},
        "instruction_set": instruction_set,
        "threads_per_kernel": threads_per_kernel(),
        "concurrent_batches": concurrent_batches(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's default: on for x86 CPUs)"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "unset (the CPU's own)"),
        "bits_key": _bits_key(gpu, cpu, instruction_set),
    }


def numeric_environment_key() -> str:
    """A short key of what decides the features' bits: device, CPU identity, kernel instruction set, threads per
    kernel, oneDNN switch, TensorFlow, Keras and NumPy builds. Lanes (batches at once) are left out: they never
    move a bit."""
    return _bits_key(_gpu_name(), cpu_identity(), kernel_instruction_set())


def _bits_key(gpu: str | None, cpu: dict[str, str], instruction_set: str) -> str:
    """:func:`numeric_environment_key` of the device, CPU and instruction set already found."""
    parts = [
        gpu or "cpu", cpu["vendor"], cpu["model"], cpu["family"], cpu["model_number"], instruction_set,
        f"threads per kernel {threads_per_kernel()}", f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}",
        f"tensorflow {_version('tensorflow')}", f"keras {_version('keras')}", f"numpy {_version('numpy')}",
        platform.system(), platform.machine(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _version(module: str) -> str:
    """The version of an imported module (``not loaded`` where it is not imported)."""
    loaded = sys.modules.get(module)
    return str(getattr(loaded, "__version__", "unknown")) if loaded is not None else "not loaded"


def _gpu_name() -> str | None:
    """The GPU TensorFlow runs the network on, if TensorFlow is loaded and sees one."""
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return None
    devices = tensorflow.config.get_visible_devices("GPU")  # the GPU this worker was given
    if not devices:
        return None
    details = tensorflow.config.experimental.get_device_details(devices[0])
    return f"GPU: {details.get('device_name', devices[0].name)}"
