"""Every example of the README and of docs/ that is meant to run, run as a user would, on the real BraTS cases.

The pages' fenced blocks are collected in order. ``bash`` blocks run in bash (``-euo pipefail``) with
``den-extract``, ``den-train``, ``den-score`` and ``python`` on the ``PATH``; ``python`` blocks run as scripts;
``pycon`` blocks are doctests, their printed results compared. A page's blocks share one fresh folder holding
``brats2015/`` (the real cases) and ``my_den.weights.h5``, with ``../shared`` beside it, as docs/index.md says. A
block after ``<!-- file: NAME -->`` is written to ``NAME``; one after ``<!-- not-run: REASON -->`` is skipped, and
must say why. The provenance page's JSON record is compared, value by value, with the record of a real run.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import DATA, PAT0001_LABELS, REPO_ROOT

RUNNABLE = ("bash", "python", "pycon")
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(?P<kind>not-run|file):\s*(?P<value>.*?)\s*-->\s*\Z", re.DOTALL)
ANYTHING = "…"
CODE_COLUMNS = 88


@dataclass
class Block:
    """One fenced block of a page: its language, text, line, and the marker comment right before it."""

    page: Path
    line: int
    language: str
    text: str
    marker: str | None = None
    value: str = ""

    @property
    def where(self) -> str:
        """``page:line``, for messages."""
        return f"{self.page.relative_to(REPO_ROOT)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order, with their marker comments."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n")
        marker = MARKER.search(before.rsplit("\n", 1)[-1])
        block = Block(page, text.count("\n", 0, match.start()) + 1, match["info"].strip().split(" ")[0], match["body"])
        if marker:
            block.marker, block.value = marker["kind"], marker["value"]
        blocks.append(block)
    return blocks


@pytest.fixture(scope="session")
def own_weights_file(tmp_path_factory, reference_extractor) -> Path:
    """A real DEN ``.weights.h5`` standing for the user's own weights: the bundled weights saved by Keras."""
    path = tmp_path_factory.mktemp("weights") / "my_den.weights.h5"
    reference_extractor.model.model.save_weights(str(path))
    return path


def example_folder(tmp_path: Path, weights: Path) -> tuple[Path, dict]:
    """The folder the examples run in, as docs/index.md describes it, and the environment they run with."""
    (tmp_path / "shared").symlink_to(DATA.parent, target_is_directory=True)
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "brats2015").symlink_to(DATA / "brats2015", target_is_directory=True)
    (folder / "my_den.weights.h5").write_bytes(weights.read_bytes())
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, module in (("den-extract", "DENExtractorLib.cli"), ("den-train", "DENExtractorLib.cli.train"),
                         ("den-score", "DENExtractorLib.cli.score"),
                         ("den-robustness", "DENExtractorLib.cli.robustness"), ("python", None)):
        script = tools / name
        command = f'"{sys.executable}"' + (f" -m {module}" if module else "")
        script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    environment = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
                   "PYTHONPATH": str(REPO_ROOT / "DENExtractor")}
    return folder, environment


def run_block(block: Block, folder: Path, environment: dict) -> None:
    """Run one runnable block in ``folder``; fail with its output if it fails."""
    if block.language == "pycon":
        run_doctest(block, folder)
        return
    command = ["bash", "-euo", "pipefail", "-c", block.text] if block.language == "bash" else [
        sys.executable, "-c", block.text]
    finished = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=900,
                              check=False)
    assert finished.returncode == 0, f"{block.where} failed:\n{finished.stdout}\n{finished.stderr}"


def run_doctest(block: Block, folder: Path) -> None:
    """Run a ``pycon`` block as a doctest in ``folder``, comparing what it prints with what the page shows."""
    test = doctest.DocTestParser().get_doctest(block.text, {}, block.where, str(block.page), block.line)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    here = Path.cwd()
    os.chdir(folder)
    try:
        outcome = runner.run(test, out=report.append)
    finally:
        os.chdir(here)
    assert outcome.attempted > 0 and outcome.failed == 0, "".join(report)


def test_code_lines_fit_the_sites_column():
    """A code line of the site wider than its column is cut off on screen (furo at 1280 pixels shows ~90); plain
    text blocks (a one-line error message, a CSV row) are shown as they are."""
    wide = [f"{block.where}: {line[:50]}" for page in PAGES if page.parent.name == "docs"
            for block in page_blocks(page) if block.language not in ("", "text")
            for line in block.text.splitlines() if len(line) > CODE_COLUMNS]
    assert not wide, wide


def test_every_block_is_run_written_or_says_why_not():
    blocks = [block for page in PAGES for block in page_blocks(page)]
    for block in blocks:
        assert block.marker != "not-run" or block.value, f"{block.where}: say why the block is not run"
        assert block.marker != "file" or re.fullmatch(r"[\w.-]+", block.value), f"{block.where}: a plain file name"
    runnable = [block for block in blocks if block.language in RUNNABLE and block.marker is None]
    readme = [block.page.name for block in runnable].count("README.md")
    assert readme >= 1 and len({block.page for block in runnable}) >= 5, [block.where for block in runnable]


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_examples_run(page, tmp_path, own_weights_file):
    folder, environment = example_folder(tmp_path, own_weights_file)
    for block in page_blocks(page):
        if block.marker == "file":
            (folder / block.value).write_text(block.text, encoding="utf-8")
        elif block.marker is None and block.language in RUNNABLE:
            run_block(block, folder, environment)


def matches(shown, actual) -> bool:
    """Whether a documented JSON value matches a real one: ``…`` stands for anything (a string, a number, the
    rest of a string at either end, a run of list items, further keys of an object); everything else is equal."""
    if shown == ANYTHING:
        return True
    if isinstance(shown, str) and isinstance(actual, str) and ANYTHING in shown:
        head, tail = shown.split(ANYTHING, 1)
        return actual.startswith(head) and actual.endswith(tail) and len(actual) >= len(head) + len(tail)
    if isinstance(shown, list) and isinstance(actual, list):
        if ANYTHING in shown:
            cut = shown.index(ANYTHING)
            head, tail = shown[:cut], shown[cut + 1:]
            return (len(actual) >= len(head) + len(tail) and matches(head, actual[:len(head)])
                    and matches(tail, actual[len(actual) - len(tail):]))
        return len(shown) == len(actual) and all(matches(s, a) for s, a in zip(shown, actual, strict=True))
    if isinstance(shown, dict) and isinstance(actual, dict):
        keys = set(shown) - {ANYTHING}
        return (keys <= set(actual) and (ANYTHING in shown or keys == set(actual))
                and all(matches(shown[key], actual[key]) for key in keys))
    return shown == actual


@pytest.mark.slow
@pytest.mark.needs_data
def test_the_documented_provenance_record_is_the_tools(tmp_path, capsys):
    from DENExtractorLib.cli.extract import main

    page = REPO_ROOT / "docs" / "provenance.md"
    shown = json.loads(next(block.text for block in page_blocks(page) if block.language == "json"))
    assert main([str(PAT0001_LABELS), "-o", str(tmp_path), "--quiet"]) == 0
    actual = json.loads((tmp_path / "pat0001_den.json").read_text())
    for key in set(shown) | set(actual):
        assert key in shown and key in actual and matches(shown[key], actual[key]), (key, shown.get(key),
                                                                                   actual.get(key))
    assert actual["preprocessing"]["divisor"] == 5.0  # the value the page explains, not the label maximum 4
