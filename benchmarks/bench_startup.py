"""Benchmark: where a new process's start-up goes, step by step, up to its first case's outputs.

Usage: ``python benchmarks/bench_startup.py [--rounds 3] [--compare-tree DIR] [--case SEG]``

Each round starts a fresh Python process per source tree (this checkout, and with ``--compare-tree`` another, e.g.
the code before a change), alternating, and times in it, with CPU seconds (the process's, all threads) and wall
seconds: importing TensorFlow and Keras, ``load_model()`` (build and weights), the windowed set-up, reading the
case, the first extraction and writing its ``.npy``, ``.png`` and ``.json``. Prints per step the median with min and
max over the rounds. The caches (weights, probe answer) are those of the user's cache folder, as a user meets them:
run once before, so that the first round does not draw the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASE = REPO.parent / "shared" / "data" / "brats2015" / "pat0001" / "OTMultiClass.nii.gz"

STEPS_PROCESS = """
import json, sys, time
from pathlib import Path
marks = [("python start-up", time.perf_counter(), time.process_time())]
def lap(name):
    marks.append((name, time.perf_counter(), time.process_time()))
from DENExtractorLib.network.model import import_keras, load_model
lap("import DENExtractorLib")
import_keras(); lap("import TensorFlow and Keras")
model = load_model(); lap("load_model (build, weights)")
model.windowed(); lap("windowed set-up")
from DENExtractorLib import DENExtractor
from DENExtractorLib.readers import load_segmentation
segmentation = load_segmentation(sys.argv[1]); lap("read the case")
extractor = DENExtractor(); extractor._model = model
result = extractor.extract(segmentation); lap("first extraction")
from DENExtractorLib.outputs.files import write_outputs
write_outputs(result, Path(sys.argv[2]), "case"); lap("write npy, png, json")
steps = [(name, wall - marks[i][1], cpu - marks[i][2]) for i, (name, wall, cpu) in enumerate(marks[1:])]
print(json.dumps(steps))
"""
"""One fresh process timing the steps (wall and CPU seconds since the previous step)."""


def run_steps(tree: Path, case: Path, out: Path) -> list[tuple[str, float, float]]:
    """Run the steps in a fresh process from ``tree``; return (step, wall, CPU) per step."""
    environment = dict(os.environ, PYTHONPATH=str(tree / "DENExtractor"), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", STEPS_PROCESS, str(case), str(out)], capture_output=True, text=True,
                          env=environment, check=True)
    return [tuple(step) for step in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--compare-tree", type=Path, metavar="DIR", help="also time the code of this source tree")
    parser.add_argument("--case", type=Path, default=CASE, help="the segmentation to extract (default pat0001)")
    arguments = parser.parse_args()
    trees = {"this checkout": REPO}
    if arguments.compare_tree:
        trees[arguments.compare_tree.name] = arguments.compare_tree
    print(f"{os.cpu_count()} CPU cores; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    runs: dict[str, list[list[tuple[str, float, float]]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as folder:
        for round_number in range(arguments.rounds):
            names = list(trees)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                runs[name].append(run_steps(trees[name], arguments.case, Path(folder)))
    for name, rounds in runs.items():
        print(f"\n== {name}: CPU s and wall s per step, median (min-max) over {len(rounds)} rounds ==")
        for index, (step, _, _) in enumerate(rounds[0]):
            cpu = [run[index][2] for run in rounds]
            wall = [run[index][1] for run in rounds]
            print(f"  {step:30} CPU {_spread(cpu):>20}   wall {_spread(wall):>20}")
        totals_cpu = [sum(step[2] for step in run) for run in rounds]
        totals_wall = [sum(step[1] for step in run) for run in rounds]
        print(f"  {'total':30} CPU {_spread(totals_cpu):>20}   wall {_spread(totals_wall):>20}")
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def _spread(values: list[float]) -> str:
    """Median with min and max."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    sys.exit(main())
