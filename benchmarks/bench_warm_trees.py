"""Benchmark: warm per-volume extraction of this source tree against another (the code before a change), in one run.

Usage: ``python benchmarks/bench_warm_trees.py --compare-tree DIR [--rounds N] [--repeats N]``

Each round starts one fresh process per tree, alternating which goes first; each process builds the model, extracts
every case once to warm up (start-up apart), then times ``--repeats`` extractions of each shared real case (wall and
the process's CPU seconds, all threads) and prints them. The parent prints, per case and tree, the median with min
and max over all rounds, and the ratios this tree / the other (below 1: this tree is faster). Used for issue 23:
one thread per network kernel with batches in lanes, against TensorFlow's own thread pool in every kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CASES = {
    "pat0001": DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz",
    "pat0002": DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz",
    "captk": DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz",
    "slicer_seg": DATA / "slicerio" / "Segmentation.seg.nrrd",
}

TIMED_PROCESS = """
import json, sys, time
from DENExtractorLib import DENExtractor
from DENExtractorLib.readers import load_case
extractor = DENExtractor()
cases = json.loads(sys.argv[1])
volumes = {name: load_case(path, None) for name, path in cases.items()}
for segmentation, image in volumes.values():
    extractor.extract(segmentation, image)
times = {}
for name, (segmentation, image) in volumes.items():
    times[name] = []
    for _ in range(int(sys.argv[2])):
        wall, cpu = time.perf_counter(), time.process_time()
        extractor.extract(segmentation, image)
        times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
print("TIMES " + json.dumps(times))
"""


def run_tree(tree: Path, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Time the cases in a fresh process running ``tree``'s DENExtractorLib."""
    environment = {**os.environ, "PYTHONPATH": str(tree / "DENExtractor"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cases = json.dumps({name: str(path) for name, path in CASES.items()})
    completed = subprocess.run([sys.executable, "-c", TIMED_PROCESS, cases, str(repeats)], capture_output=True,
                               text=True, env=environment, check=True)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("TIMES "))
    return json.loads(line[len("TIMES "):])


def summary(values: list[float]) -> str:
    """Median [min, max] of seconds."""
    return f"{statistics.median(values):6.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-tree", type=Path, required=True, metavar="DIR", help="the other source tree")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed extractions per case and process (default 3)")
    arguments = parser.parse_args()
    trees = {"this tree": REPO, "other tree": arguments.compare_tree.resolve()}
    collected: dict[str, dict[str, list[tuple[float, float]]]] = {name: {case: [] for case in CASES} for name in trees}
    for round_number in range(arguments.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for name in order:
            for case, times in run_tree(trees[name], arguments.repeats).items():
                collected[name][case].extend(times)
    print(f"warm per volume, {arguments.rounds} rounds x {arguments.repeats} repeats, cores {os.cpu_count()}; "
          f"seconds: median [min, max]")
    print(f"{'case':<11} {'tree':<10} {'wall':>24} {'cpu':>24}")
    for case in CASES:
        for name in trees:
            walls = [wall for wall, _ in collected[name][case]]
            cpus = [cpu for _, cpu in collected[name][case]]
            print(f"{case:<11} {name:<10} {summary(walls):>24} {summary(cpus):>24}")
        ratio_wall = statistics.median(w for w, _ in collected["this tree"][case]) / statistics.median(
            w for w, _ in collected["other tree"][case])
        ratio_cpu = statistics.median(c for _, c in collected["this tree"][case]) / statistics.median(
            c for _, c in collected["other tree"][case])
        print(f"{case:<11} {'ratio':<10} {ratio_wall:>24.2f} {ratio_cpu:>24.2f}   (this / other)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
