"""The speed work moves no number: den-extract on the shared real cases writes the bytes the code before it wrote.

The pins (``Testing/data/golden_outputs.json``) hold, per case, the sha256 of the ``.npy``, of the stable provenance
fields and of the cohort-table row, computed once by the code before the start-up cache, the background reading
and the new heatmap drawing (see ``golden_outputs.py``).
"""

from __future__ import annotations

import json

import pytest
from golden_outputs import PINS, environment, output_digests, run_golden_cohort

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


def _pins() -> dict:
    """The pinned digests and the environment they were computed in."""
    return json.loads(PINS.read_text(encoding="utf-8"))


def _assert_as_pinned(out) -> None:
    """Every case's digests equal the pins; on failure, say which and in what environment the pins were made."""
    pins = _pins()
    found = output_digests(out)
    differing = {case: kinds for case, kinds in found.items() if kinds != pins["digests"][case]}
    assert not differing, (f"outputs differ from the golden pins for {sorted(differing)}; pins made in "
                           f"{pins['environment']}, this run in {environment(out)}")


def test_one_process_cohort_writes_the_golden_bytes(tmp_path):
    """A one-process cohort (next case read while the network runs, weights from the checked cache) writes the
    same .npy bytes, cohort-table rows and provenance fields as the code before the speed work."""
    _assert_as_pinned(run_golden_cohort(tmp_path))


@pytest.mark.scale
def test_worker_processes_write_the_golden_bytes(tmp_path):
    """Two ``--jobs`` workers sharing the weights cache write the same bytes as the code before the speed work."""
    _assert_as_pinned(run_golden_cohort(tmp_path, ("--jobs", "2")))
