"""Logging: the library logs through ``logging`` and prints nothing; den-extract keeps its lines by default and
adds ``-v`` and ``--log-file``."""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from DENExtractorLib.cli.extract import main
from helpers import REPO_ROOT

LIBRARY = REPO_ROOT / "DENExtractor" / "DENExtractorLib"
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def terminal_writes(path: Path) -> list[str]:
    """Where a module writes to the terminal itself: print(), sys.stdout / sys.stderr, traceback printing."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"{path.name}:{node.lineno} print()")
        if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr", "print_exc", "print_exception") \
                and isinstance(node.value, ast.Name) and node.value.id in ("sys", "traceback"):
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_nothing_below_the_command_line_layer_writes_to_the_terminal():
    modules = [path for path in LIBRARY.rglob("*.py") if "cli" not in path.relative_to(LIBRARY).parts]
    assert len(modules) > 40  # the whole library is scanned, not an empty folder
    assert [write for path in modules for write in terminal_writes(path)] == []
    # den-extract's and den-train's lines go through cli/logs.say (a progress bar alone is drawn on sys.stderr)
    for command in ("extract.py", "train.py"):
        assert [write for write in terminal_writes(LIBRARY / "cli" / command) if "print" in write] == [], command


@pytest.mark.slow
def test_default_lines_are_kept_and_verbose_adds_the_librarys_records(tmp_path, small_case, capsys):
    assert main([str(small_case), "-o", str(tmp_path / "plain"), "--no-png"]) == 0
    plain = capsys.readouterr()
    assert plain.err == ""
    assert plain.out.splitlines() == [f"small_case: done, 64 rows ({plain.out.split('(')[1].split()[0]} with tumour) "
                                      f"-> {tmp_path / 'plain' / 'small_case_den.npy'}"]

    assert main([str(small_case), "-o", str(tmp_path / "verbose"), "--no-png", "-v"]) == 0
    verbose = capsys.readouterr()
    assert verbose.out == plain.out.replace("plain", "verbose")
    lines = verbose.err.splitlines()
    assert lines and all(line.startswith("den-extract: INFO: ") for line in lines), lines
    assert any(re.fullmatch(r"den-extract: INFO: model den-ref-v1 built in [\d.]+ s \(weights sha256 [0-9a-f]{64}, "
                            r"bundled\)", line) for line in lines), lines
    assert any(line.startswith(f"den-extract: INFO: {small_case}: 64 slices (") for line in lines), lines
    assert not any("DEBUG" in line for line in lines)

    assert main([str(small_case), "-o", str(tmp_path / "debug"), "--no-png", "-vv"]) == 0
    assert f"den-extract: DEBUG: reading segmentation {small_case}" in capsys.readouterr().err.splitlines()


@pytest.mark.slow
def test_the_log_file_holds_every_line_and_record_timestamped_and_is_appended_to(tmp_path, small_case, capsys):
    log = tmp_path / "den.log"
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,segmentation\nsmall,{small_case}\nlost,lost.nii.gz\n", encoding="utf-8")
    assert main(["--cases", str(cases), "-o", str(tmp_path / "out"), "--no-png", "--log-file", str(log), "-q"]) == 1
    shown = capsys.readouterr()
    assert "INFO" not in shown.err and len(shown.err.splitlines()) == 2  # without -v: today's lines only
    assert f"cohort table: {tmp_path / 'out' / 'den_cohort.csv'}" in [line.split(": ", 1)[1] for line in
                                                                      log.read_text(encoding="utf-8").splitlines()]
    records = log.read_text(encoding="utf-8").splitlines()
    assert all(re.match(rf"{TIMESTAMP} (DEBUG|INFO|WARNING|ERROR) DENExtractorLib[.\w]*: ", line) for line in records)
    messages = [line.split(": ", 1)[1] for line in records]
    lost = f"{cases} row 3: case 'lost': segmentation file not found: {tmp_path / 'lost.nii.gz'}"
    for line in (*shown.err.splitlines(), *shown.out.splitlines()):  # every line the terminal showed
        assert line in messages, line
    assert f"case lost failed: {lost}" in messages  # the library's own record, as a warning
    assert any(" WARNING DENExtractorLib.cohorts.runners: case lost failed" in line for line in records)
    assert any(" ERROR DENExtractorLib.cli: den-extract: error: " in line for line in records)

    assert main([str(tmp_path / "none.nii.gz"), "-o", str(tmp_path / "again"), "--log-file", str(log)]) == 1
    capsys.readouterr()
    again = log.read_text(encoding="utf-8").splitlines()
    assert again[: len(records)] == records and len(again) > len(records)
    assert again[-1].endswith(f"den-extract: error: {tmp_path / 'none.nii.gz'}: no such file")


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path, small_case, capsys):
    log = tmp_path / "missing" / "den.log"
    assert main([str(small_case), "-o", str(tmp_path / "out"), "--log-file", str(log)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"den-extract: error: {log}: cannot write the log file (")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_python_user_gets_the_records_through_standard_logging(reference_extractor, small_case, caplog):
    from DENExtractorLib import load_segmentation

    with caplog.at_level(logging.INFO, logger="DENExtractorLib"):
        reference_extractor.extract(load_segmentation(small_case), labels=[4])
    assert any(record.name == "DENExtractorLib.extraction.extractor" and "64 slices" in record.getMessage()
               and "labels [4]" in record.getMessage() for record in caplog.records)


def test_den_train_has_the_log_file_too(tmp_path, small_case, capsys):
    from DENExtractorLib.cli.train import main as train

    cases = tmp_path / "labels.csv"
    cases.write_text(f"case_id,segmentation,grade\na,{small_case},high\n", encoding="utf-8")
    log = tmp_path / "train.log"
    assert train(["--cases", str(cases), "--label-column", "grade", "-o", str(tmp_path / "model"),
                  "--log-file", str(log)]) == 2
    shown = capsys.readouterr().err.strip()
    assert shown.startswith("den-train: error: ") and "needs at least two classes" in shown
    assert re.fullmatch(rf"{TIMESTAMP} ERROR DENExtractorLib.cli: {re.escape(shown)}",
                        log.read_text(encoding="utf-8").strip())


@pytest.mark.slow
def test_the_command_as_a_process_ends_with_its_status_and_everything_it_wrote_complete(tmp_path, small_case):
    """The process leaves without the interpreter's tear-down: its piped stdout, stderr and log file must still
    hold every line, and its exit status must be the run's."""
    broken, log = tmp_path / "broken.nii.gz", tmp_path / "run.log"
    broken.write_bytes(b"not a NIfTI file")
    completed = subprocess.run(
        [sys.executable, "-m", "DENExtractorLib.cli", str(small_case), str(broken), "-o", str(tmp_path / "out"),
         "--quiet", "--log-file", str(log)],
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "DENExtractor")), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    assert completed.stdout.startswith("small_case: done, ")
    last_line = completed.stderr.splitlines()[-1]
    assert last_line.startswith("2 case(s): 1 done")
    assert log.read_text(encoding="utf-8").splitlines()[-1].endswith(last_line)
