"""Benchmark: a cohort run as a user runs it, whole processes, four ways and the published loop, in one run.

Usage: ``python benchmarks/bench_cohort.py [--cases 8] [--rounds 3] [--jobs 2]``

The cohort is the real BraTS cases of ``../shared/data/brats2015`` repeated under several ids (a cases CSV). Each
round runs, in a rotating order (interleaved, so a slow spell of a shared machine hits every variant):

- the published script's own loop: its model built once, then ``model.predict`` on every slice of each case;
- ``den-extract --cases CSV --jobs 1``; ``--jobs N``; ``--scheduler local --jobs N`` (Dask, N local workers).

Prints, per variant, seconds per case (median with min and max over the rounds, start-up included), the ratio of
the published loop's time to it, the peak memory of its largest process (the worker, sampled every 0.1 s), and for
the parallel variants the scaling efficiency (speed-up over ``--jobs 1`` divided by N). Targets: ``--jobs 1`` at
least 2.5x the published loop per case on 8 cases; at most 1.5 GB per worker.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BRATS = REPO.parent / "shared" / "data" / "brats2015"
SAMPLE_SECONDS = 0.1


def published_loop(cases_csv: Path) -> None:
    """The published script's loop over a cohort: one model, then per case read, resize every slice, normalise and
    ``model.predict`` slice by slice (run in its own process by the benchmark)."""
    import csv

    import nibabel
    import numpy as np
    from DENExtractorLib.network.model import build_model
    from PIL import Image

    model = build_model()
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        data = nibabel.load(str(cases_csv.parent / row["segmentation"])).get_fdata()
        slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
        stack = np.expand_dims(np.array(slices) / np.max(slices), axis=-1)
        features = np.concatenate([model.predict(stack[s : s + 1], verbose=0) for s in range(len(stack))])
        np.save(cases_csv.parent / f"published_{row['case_id']}.npy", features)


def write_cohort(folder: Path, count: int) -> Path:
    """A cases CSV of ``count`` real cases (pat0001 and pat0002 in turn, each under its own id)."""
    lines = ["case_id,segmentation"]
    for number in range(count):
        source = BRATS / ("pat0001", "pat0002")[number % 2] / "OTMultiClass.nii.gz"
        lines.append(f"case{number:03d},{source}")
    path = folder / "cases.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_measured(command: list[str]) -> tuple[float, float]:
    """Run a command to its end; return its wall seconds and the peak RSS (GB) of its largest process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            members = [watched, *watched.children(recursive=True)]
            peak = max([peak] + [member.memory_info().rss for member in members if member.is_running()])
        except psutil.Error:
            pass
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    return seconds, peak / 1024**3


def variants(cases_csv: Path, out: Path, jobs: int) -> dict[str, list[str]]:
    """The commands compared, by name."""
    python = sys.executable
    den = [python, "-m", "DENExtractorLib.cli", "--cases", str(cases_csv), "--no-png", "--quiet"]
    return {
        "published loop": [python, str(Path(__file__).resolve()), "--published-loop", str(cases_csv)],
        "den-extract --jobs 1": [*den, "-o", str(out / "jobs1")],
        f"den-extract --jobs {jobs}": [*den, "-o", str(out / f"jobs{jobs}"), "--jobs", str(jobs)],
        f"Dask, {jobs} local workers": [*den, "-o", str(out / "dask"), "--scheduler", "local", "--jobs", str(jobs)],
    }


def main() -> int:
    """Run the rounds and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases in the cohort (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel variants (default 2)")
    parser.add_argument("--published-loop", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.published_loop is not None:
        published_loop(arguments.published_loop)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="bench_cohort_"))
    try:
        cases_csv = write_cohort(folder, arguments.cases)
        commands = variants(cases_csv, folder, arguments.jobs)
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, float] = {name: 0.0 for name in commands}
        names = list(commands)
        for round_number in range(arguments.rounds):
            order = names[round_number % len(names):] + names[: round_number % len(names)]
            for name in order:
                for stale in folder.glob("jobs*"):
                    shutil.rmtree(stale, ignore_errors=True)
                shutil.rmtree(folder / "dask", ignore_errors=True)
                elapsed, peak = run_measured(commands[name])
                seconds[name].append(elapsed / arguments.cases)
                peaks[name] = max(peaks[name], peak)
                print(f"round {round_number + 1}: {name}: {elapsed:.1f} s", file=sys.stderr)
        report(seconds, peaks, arguments)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(seconds: dict[str, list[float]], peaks: dict[str, float], arguments: argparse.Namespace) -> None:
    """Print the table: s/case median (min-max), ratio to the published loop, peak GB, scaling efficiency."""
    published = statistics.median(seconds["published loop"])
    single = statistics.median(seconds["den-extract --jobs 1"])
    print(f"{arguments.cases} real cases, {arguments.rounds} interleaved rounds, {psutil.cpu_count()} CPU cores visible, "
          "whole processes (start-up included)")
    print(f"{'variant':28} {'s/case median (min-max)':>26} {'vs published':>13} {'peak GB/worker':>15} {'scaling eff.':>13}")
    for name, values in seconds.items():
        median = statistics.median(values)
        workers = arguments.jobs if ("--jobs 1" not in name and name != "published loop") else 1
        efficiency = f"{single / median / workers:12.0%}" if workers > 1 else f"{'':12}"
        print(f"{name:28} {median:10.2f} ({min(values):.2f}-{max(values):.2f}) {published / median:12.2f}x "
              f"{peaks[name]:14.2f}  {efficiency}")


if __name__ == "__main__":
    sys.exit(main())
