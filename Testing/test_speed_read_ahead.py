"""A one-process cohort reads the next case while the network computes: never more than one case ahead, each case
reported as soon as it is written, outcomes in case order, failures in place, and every finished case kept when
interrupted."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from DENExtractorLib.cohorts import run as run_module
from DENExtractorLib.cohorts.cases import Case
from DENExtractorLib.cohorts.run import run_case, run_cohort
from DENExtractorLib.demo import write_synthetic_case

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_cases(tmp_path_factory) -> list[Case]:
    """Five small synthetic cases, each different."""
    folder = tmp_path_factory.mktemp("read_ahead")
    return [Case(f"case{index}", write_synthetic_case(folder / f"case{index}.nii.gz", shape=(40, 40, 16), seed=index))
            for index in range(5)]


def test_reading_runs_at_most_one_case_ahead_of_the_network(small_cases, reference_extractor, tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    real_read, real_extract = run_module.load_case, reference_extractor.extract

    def read(segmentation, image=None, **options):
        with lock:
            events.append(("read", Path(segmentation).name))
        return real_read(segmentation, image, **options)

    def extract(segmentation, image=None, **options):
        with lock:
            events.append(("compute", segmentation.source.rsplit("/", 1)[-1]))
        return real_extract(segmentation, image, **options)

    monkeypatch.setattr(run_module, "load_case", read)
    monkeypatch.setattr(reference_extractor, "extract", extract)
    outcomes = run_cohort(small_cases, tmp_path, reference_extractor, png=False)
    assert [outcome.status for outcome in outcomes] == ["done"] * 5
    for index in range(5):
        name = f"case{index}.nii.gz"
        read_at, computed_at = events.index(("read", name)), events.index(("compute", name))
        assert read_at < computed_at
        started = sum(kind == "compute" for kind, _ in events[:read_at])
        assert started >= index - 1, events  # case k is read only once case k-1 is computing


def test_each_case_is_reported_once_written_before_the_next_case_is_computed(small_cases, reference_extractor,
                                                                            tmp_path, monkeypatch):
    events: list[str] = []
    real_extract = reference_extractor.extract

    def extract(segmentation, image=None, **options):
        events.append("compute " + segmentation.source.rsplit("/", 1)[-1].split(".")[0])
        return real_extract(segmentation, image, **options)

    monkeypatch.setattr(reference_extractor, "extract", extract)
    run_cohort(small_cases[:3], tmp_path, reference_extractor, png=False,
               on_case_done=lambda outcome: events.append(f"report {outcome.case.case_id}"))
    assert events == ["compute case0", "report case0", "compute case1", "report case1", "compute case2",
                      "report case2"]


def test_outcomes_come_in_case_order_with_failures_in_place_and_same_outputs_as_one_case_runs(
        small_cases, reference_extractor, tmp_path):
    cases = [small_cases[0], Case("lost", tmp_path / "lost.nii.gz"), small_cases[1], small_cases[2]]
    reported = []
    (tmp_path / "cohort").mkdir()
    (tmp_path / "alone").mkdir()
    outcomes = run_cohort(cases, tmp_path / "cohort", reference_extractor, on_case_done=reported.append)
    assert reported == outcomes
    assert [(outcome.case.case_id, outcome.status) for outcome in outcomes] == [
        ("case0", "done"), ("lost", "failed"), ("case1", "done"), ("case2", "done")]
    assert "lost.nii.gz" in outcomes[1].message and "no such file" in outcomes[1].message
    for case in (small_cases[0], small_cases[2]):
        alone = run_case(case, tmp_path / "alone", reference_extractor)
        assert alone.status == "done"
        for kind in ("npy", "png"):
            assert (tmp_path / "alone" / alone.outputs[kind].name).read_bytes() == \
                (tmp_path / "cohort" / alone.outputs[kind].name).read_bytes()


def test_an_interruption_keeps_and_reports_the_case_being_written(small_cases, reference_extractor, tmp_path,
                                                                   monkeypatch):
    real_extract = reference_extractor.extract
    calls = []

    def extract(segmentation, image=None, **options):
        calls.append(segmentation.source)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_extract(segmentation, image, **options)

    monkeypatch.setattr(reference_extractor, "extract", extract)
    reported = []
    with pytest.raises(KeyboardInterrupt):
        run_cohort(small_cases, tmp_path, reference_extractor, png=False, on_case_done=reported.append)
    assert [outcome.case.case_id for outcome in reported] == ["case0", "case1"]
    for outcome in reported:
        assert outcome.status == "done"
        assert np.load(outcome.outputs["npy"]).shape == (outcome.rows, 4096)
        assert outcome.outputs["json"].is_file()
    assert not (tmp_path / "case2_den.npy").exists()
