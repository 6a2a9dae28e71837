"""Benchmark: den-robustness's cost per perturbed input against a plain extraction, on the same machine, in one run.

Usage: ``python benchmarks/bench_robustness.py [--repeats N] [--kinds K1,K2] [--contours N] [--skip-processes]``

Prints, on each shared case (the two BraTS cases and the CaPTk case), with one warm extractor and rounds
interleaved (median, min and max):

1. a plain extraction (``DENExtractor.extract_file``: read, preprocess, network) in seconds per case;
2. one case of den-robustness (``run_perturbed_case``: one read, then every input of the plan perturbed,
   preprocessed and through the network, then its outputs written), in seconds per case and per input, and the
   ratio per input / plain (target: at most 1.1);
3. the perturbations alone (``perturb``), in seconds per input, by kind;
4. unless ``--skip-processes``: peak resident memory of a whole ``den-extract`` process and of a whole
   ``den-robustness`` process on the three cases (target: the same).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CASES = {
    "pat0001": DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz",
    "pat0002": DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz",
    "AAAC0": DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz",
}
PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
"""A wrapper process that runs a command and prints its peak resident memory in KiB (Linux)."""


def spread(values: list[float]) -> str:
    """Median with min and max."""
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default="dilate,erode,rotate,translate,contour")
    parser.add_argument("--contours", type=int, default=3)
    parser.add_argument("--skip-processes", action="store_true")
    arguments = parser.parse_args()
    from DENExtractorLib import DENExtractor
    from DENExtractorLib.cohorts.cases import Case
    from DENExtractorLib.readers import load_segmentation
    from DENExtractorLib.robustness import PerturbationPlan, perturb
    from DENExtractorLib.robustness.perturbed_case import run_perturbed_case

    plan = PerturbationPlan(kinds=tuple(arguments.kinds.split(",")), contours=arguments.contours)
    members = plan.perturbations()
    extractor = DENExtractor()
    extractor.extract_file(CASES["pat0001"])  # build the model and warm it
    plain: dict[str, list[float]] = {case_id: [] for case_id in CASES}
    robust: dict[str, list[float]] = {case_id: [] for case_id in CASES}
    by_kind: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(arguments.repeats):
            order = list(CASES.items())[round_number % 3:] + list(CASES.items())[: round_number % 3]
            for case_id, path in order:
                started = time.perf_counter()
                extractor.extract_file(path)
                plain[case_id].append(time.perf_counter() - started)
                started = time.perf_counter()
                outcome = run_perturbed_case(Case(case_id, path), Path(folder), extractor, resume=False, png=False,
                                             plan=plan)
                robust[case_id].append(time.perf_counter() - started)
                assert outcome.status == "done", outcome.message
                segmentation = load_segmentation(path)
                for member in members[1:]:
                    started = time.perf_counter()
                    perturb(segmentation, member)
                    by_kind.setdefault(member.kind, []).append(time.perf_counter() - started)
    print(f"plan: {len(members)} inputs per case ({', '.join(member.name for member in members)}); "
          f"{arguments.repeats} rounds; {os.cpu_count()} CPUs")
    ratios = []
    for case_id in CASES:
        per_input = [seconds / len(members) for seconds in robust[case_id]]
        ratio = statistics.median(per_input) / statistics.median(plain[case_id])
        ratios.append(ratio)
        print(f"{case_id}: plain extraction {spread(plain[case_id])} s; den-robustness {spread(robust[case_id])} s "
              f"per case = {spread(per_input)} s per input; ratio per input / plain {ratio:.2f}x")
    print(f"ratio per perturbed input / plain extraction, median over the cases: {statistics.median(ratios):.2f}x "
          "(target <= 1.1x)")
    for kind, seconds in by_kind.items():
        print(f"perturb() alone, {kind}: {spread(seconds)} s per input")
    if not arguments.skip_processes:
        _peak_memory(plan)


def _peak_memory(plan) -> None:
    """Peak RSS of whole processes: den-extract and den-robustness on the three cases."""
    environment = dict(os.environ, PYTHONPATH=str(REPO / "DENExtractor"), TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as folder:
        commands = {
            "den-extract": ["-m", "DENExtractorLib.cli", *map(str, CASES.values()), "-o", f"{folder}/extract",
                            "--no-png", "-q"],
            "den-robustness": ["-m", "DENExtractorLib.cli.robustness", *map(str, CASES.values()), "-o",
                               f"{folder}/robustness", "--kinds", ",".join(plan.kinds), "--contours",
                               str(plan.contours), "-q"],
        }
        for name, command in commands.items():
            finished = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, *command], capture_output=True,
                                      text=True, env=environment, check=True)
            print(f"peak RSS of a whole {name} process on the 3 cases: {int(finished.stdout.split()[-1]) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
