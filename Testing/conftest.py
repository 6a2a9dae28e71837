"""Shared fixtures (results reused across tests: TensorFlow is slow) and the test markers' rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cohort_fixtures import (  # fixtures shared by the cohort runners' tests
    cases_csv_run,  # noqa: F401  (the cases CSV run every runner must equal)
    one_process_run,  # noqa: F401  (the cohort runners' shared reference run)
)
from helpers import DATA, PAT0001_LABELS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``needs_data`` (markers are written next to the tests: ``pytestmark`` or decorators) skip when
    the shared real data are absent (a clone from elsewhere), except in CI, where the data are always there and
    their absence is a failure."""
    data_missing = not DATA.is_dir() and os.environ.get("CI") != "true"
    skip = pytest.mark.skip(reason=f"the shared real data are not at {DATA}")
    for item in items:
        if data_missing and item.get_closest_marker("needs_data") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def reference_extractor():
    """One extractor with the default settings (reference mode, bundled weights), its model built once."""
    from DENExtractorLib import DENExtractor

    return DENExtractor()


@pytest.fixture(scope="session")
def reference_result(reference_extractor):
    """DEN features of the real BraTS case pat0001 in reference mode (bundled weights)."""
    return reference_extractor.extract_file(PAT0001_LABELS)


@pytest.fixture(scope="session")
def small_case(tmp_path_factory) -> Path:
    """A small synthetic glioblastoma label map (64x64x40) written as NIfTI."""
    from DENExtractorLib.demo import write_synthetic_case

    return write_synthetic_case(tmp_path_factory.mktemp("small") / "small_case.nii.gz", shape=(64, 64, 40), seed=3)
