"""The documentation site: built by Sphinx with warnings as errors, its command-line reference generated from the
real parsers (every option of both commands is on the page), and pages from other branches linked when present."""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def build(source: Path, target: Path) -> subprocess.CompletedProcess:
    """``sphinx-build -W`` of ``source`` into ``target``, as .ci/run builds the site."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source),
                           str(target)], capture_output=True, text=True, timeout=600, check=False)


def page_text(path: Path) -> str:
    """A built page's text: tags removed, HTML entities decoded, white space made single spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from this checkout's docs/."""
    target = tmp_path_factory.mktemp("site")
    finished = build(REPO_ROOT / "docs", target)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return target


@pytest.mark.parametrize("module", ["extract", "train", "score"])
def test_cli_reference_lists_every_option_of_the_parser(site, module):
    from importlib import import_module

    parser = import_module(f"DENExtractorLib.cli.{module}").build_parser()
    text = page_text(site / "cli.html")
    actions = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]  # -h: argparse's
    options = [option for action in actions for option in action.option_strings]
    assert len(options) > 5
    missing = [option for option in options if option not in text]
    assert not missing, missing
    helps = [action.help for action in actions if action.help and "%" not in action.help]
    unlisted = [help_text for help_text in helps if " ".join(help_text.split()) not in text]
    assert not unlisted, unlisted  # word for word: straight quotes, so that '{id}.nii.gz' can be copied


def test_every_page_is_built_and_the_api_comes_from_the_docstrings(site):
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert (site / f"{page.stem}.html").is_file(), page.name
    from DENExtractorLib import DENExtractor

    first_line = DENExtractor.extract_file.__doc__.splitlines()[0]
    assert first_line.split(" (")[0] in page_text(site / "api.html")


def test_a_page_from_another_branch_joins_the_contents_when_it_is_there(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(REPO_ROOT / "docs", docs, ignore=shutil.ignore_patterns("_build"))
    for page in ("slicer", "speed"):
        (docs / f"{page}.md").unlink(missing_ok=True)
    (docs / "slicer.md").write_text("# The 3D Slicer guide\n\nLoad a segmentation.\n", encoding="utf-8")
    finished = build(docs, tmp_path / "site")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    index = page_text(tmp_path / "site" / "index.html")
    assert "The 3D Slicer guide" in index and "Speed" not in index
