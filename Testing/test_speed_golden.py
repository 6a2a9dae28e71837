"""den-extract on the shared real cases writes the pinned outputs: bitwise where this environment is pinned, within
a stated tolerance elsewhere (and the test output says that bitwise was not checked there).

The pins (``Testing/data/golden_outputs.json``, ``golden_features.npz``; see ``golden_outputs.py``) are keyed by the
provenance's ``compute.bits_key``: CPU, kernel instruction set, threads per kernel, TensorFlow, Keras and NumPy
builds. A run on another CPU is compared within ``RELATIVE_TOLERANCE`` of the largest feature, never failed for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
from DENExtractorLib.network.environment import INSTRUCTION_SETS, kernel_instruction_set
from golden_outputs import GOLDEN_CASES, compare_with_pins, run_golden_cohort, write_golden_csv
from helpers import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


class GoldenToleranceWarning(UserWarning):
    """Shown in the test summary where the golden outputs were compared within tolerance, not bitwise."""


def _assert_as_pinned(out, case_ids: tuple[str, ...] | None = None):
    """Every case matches the pins (bitwise or within tolerance, as the environment allows); the comparison is
    printed, and a tolerance comparison is also shown in the warnings summary."""
    comparison = compare_with_pins(out, case_ids)
    print(comparison.report())
    assert not comparison.differing, f"outputs differ from the golden pins: {comparison.differing}; {comparison.report()}"
    if comparison.mode == "tolerance":
        warnings.warn(comparison.report(), GoldenToleranceWarning, stacklevel=2)
    return comparison


def test_one_process_cohort_writes_the_golden_bytes(tmp_path):
    """A one-process cohort (next case read while the network runs, weights from the checked cache) writes the
    pinned .npy bytes, cohort-table rows and provenance fields."""
    _assert_as_pinned(run_golden_cohort(tmp_path))


@pytest.mark.scale
def test_worker_processes_write_the_golden_bytes(tmp_path):
    """Two ``--jobs`` workers sharing the weights cache write the same bytes as one process."""
    _assert_as_pinned(run_golden_cohort(tmp_path, ("--jobs", "2")))


def _den_extract(tmp_path, name: str, *, prefix: tuple[str, ...] = (), environment: dict | None = None):
    """Run den-extract on the first golden case in a fresh process; return its output folder."""
    out = tmp_path / name
    command = [*prefix, sys.executable, "-m", "DENExtractorLib.cli", "--cases",
               str(write_golden_csv(tmp_path, (GOLDEN_CASES[0][0],))), "-o", str(out), "--quiet", "--no-png"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                               env={**os.environ, **(environment or {})})
    assert completed.returncode == 0, completed.stderr
    return out


def test_one_core_and_all_cores_give_the_same_bits(tmp_path):
    """``taskset -c 0`` (one core) and the whole machine write the same .npy: the kernels' sums do not depend on
    the cores (on an AMD EPYC with AVX2 they did, by up to 3e-8, before each kernel ran on one thread)."""
    one_core = _den_extract(tmp_path, "one_core", prefix=("taskset", "-c", "0"))
    all_cores = _den_extract(tmp_path, "all_cores")
    name = f"{GOLDEN_CASES[0][0]}_den.npy"
    assert (one_core / name).read_bytes() == (all_cores / name).read_bytes()
    _assert_as_pinned(all_cores, (GOLDEN_CASES[0][0],))


def test_a_lower_instruction_set_is_compared_within_tolerance_and_says_so(tmp_path):
    """With oneDNN held one instruction set below this CPU's (``ONEDNN_MAX_CPU_ISA``), the record names the lower
    set, its environment is not the pinned one, and the golden comparison passes within tolerance, reporting the
    difference: another CPU never fails the suite, and never passes it silently."""
    levels = [name for name, _ in INSTRUCTION_SETS]
    here = kernel_instruction_set()
    assert here in levels[1:], f"this CPU's level {here} leaves none below it to test"
    lower = levels[levels.index(here) - 1]
    out = _den_extract(tmp_path, "lower_isa", environment={"ONEDNN_MAX_CPU_ISA": lower.upper()})
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        comparison = _assert_as_pinned(out, (GOLDEN_CASES[0][0],))
    assert comparison.this_run["instruction_set"] == lower
    assert comparison.mode == "tolerance"
    assert any(issubclass(warning.category, GoldenToleranceWarning) for warning in shown)
    print(f"{lower} instead of {here}: features differ by {comparison.max_relative_difference:.2e} of the largest")
