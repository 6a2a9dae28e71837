"""Benchmark: den-train's training throughput (slices per second) and peak memory, on this machine, in one run.

Usage: ``python benchmarks/bench_train.py [--repeats 3] [--small 8] [--large 32]``

1. Throughput, in this process, on the tumour slices of a generated labelled cohort (48x48x24 cases): one
   training step (batch of 32 slices, Adam, class weights) of ``--train-layers dense`` (the 4096-unit layer and the
   head, on cached frozen-trunk outputs) and of ``--train-layers all`` (every layer, from the network input),
   interleaved; plus the frozen-trunk forward pass that ``dense`` runs once per slice and caches. Medians with min
   and max, in slices per second, and the ratio dense/all.
2. Peak RSS of a whole ``den-train`` run (own process, its VmHWM; ``dense`` 2 epochs, ``all`` 1 epoch) on a small
   and a large cohort: streaming from the cache means memory must not grow with the cohort (target <= 2.5 GB).
   Linux only (reads ``/proc/self/status``).

Runs on the GPU when TensorFlow sees one (the device is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "DENExtractor"))
BATCH = 32
RUN_AND_REPORT_PEAK = (
    "import sys\n"
    "from DENExtractorLib.cli.train import main\n"
    "status = main(sys.argv[1:])\n"
    "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
    "print('peak-kB', peak.split()[1], file=sys.stderr)\n"
    "sys.exit(status)\n"
)
"""Runs den-train and prints the process's own peak RSS (VmHWM). Not ``wait4``'s ``ru_maxrss``: on Linux a child
started by vfork/exec inherits its parent's high-water mark, which would report the benchmark's own memory."""


def summary(rates: list[float]) -> str:
    """Median (min-max) of rates."""
    return f"{statistics.median(rates):8.1f} slices/s (min {min(rates):.1f}, max {max(rates):.1f})"


def step_rate(model, inputs: np.ndarray, targets: np.ndarray, weights: dict) -> float:
    """Slices per second of one training step on ``inputs``."""
    start = time.perf_counter()
    model.classifier.train_on_batch(inputs, targets, class_weight=weights)
    return len(inputs) / (time.perf_counter() - start)


def throughput(folder: Path, repeats: int) -> None:
    """Interleaved training-step rates of dense and all training, and the frozen-trunk forward rate."""
    from DENExtractorLib.settings import ExtractionSettings
    from DENExtractorLib.training.cache import cache_cases
    from DENExtractorLib.training.data import one_hot, slice_set
    from DENExtractorLib.training.labelled import read_labelled_cohort
    from DENExtractorLib.training.model import build_trainable, make_deterministic
    from DENExtractorLib.training.synthetic_cohort import write_labelled_cohort

    cohort = read_labelled_cohort(write_labelled_cohort(folder / "cohort", cases=6), "necrosis")
    cached, _ = cache_cases(cohort, folder / "model", ExtractionSettings())
    slices = slice_set(cached)
    positions = np.arange(BATCH) % len(slices)
    inputs = slices.read(positions, lambda case, rows: case.network_inputs(rows))
    targets = one_hot(slices.labels[positions], 2)
    weights = {0: 1.0, 1: 1.0}
    make_deterministic(0)
    dense = build_trainable(None, 2, "dense", 1e-4, 0)
    everything = build_trainable(None, 2, "all", 1e-4, 0)
    trunk_outputs = dense.classifier_input(inputs)
    step_rate(dense, trunk_outputs, targets, weights)  # first calls trace the functions
    step_rate(everything, inputs, targets, weights)
    rates: dict[str, list[float]] = {"trunk": [], "dense": [], "all": []}
    for _ in range(repeats):
        start = time.perf_counter()
        dense.classifier_input(inputs)
        rates["trunk"].append(BATCH / (time.perf_counter() - start))
        rates["dense"].append(step_rate(dense, trunk_outputs, targets, weights))
        rates["all"].append(step_rate(everything, inputs, targets, weights))
    print(f"frozen-trunk forward pass (dense, once per slice) {summary(rates['trunk'])}")
    print(f"training step, --train-layers dense               {summary(rates['dense'])}")
    print(f"training step, --train-layers all                 {summary(rates['all'])}")
    ratios = [d / a for d, a in zip(rates["dense"], rates["all"], strict=True)]
    print(f"dense/all step ratio: median {statistics.median(ratios):.1f}x (min {min(ratios):.1f}, max {max(ratios):.1f})")


def peak_rss(folder: Path, cases: int, layers: str, epochs: int) -> tuple[float, float, int]:
    """(peak RSS in GB, seconds, slices) of a whole den-train run in its own process on ``cases`` cases."""
    from DENExtractorLib.training.synthetic_cohort import write_labelled_cohort

    csv_path = folder / f"cohort{cases}" / "labels.csv"
    if not csv_path.exists():
        write_labelled_cohort(csv_path.parent, cases=cases)
    model_dir = folder / f"model{cases}-{layers}"
    command = [sys.executable, "-c", RUN_AND_REPORT_PEAK, "--cases", str(csv_path), "--label-column",
               "necrosis", "-o", str(model_dir), "--epochs", str(epochs), "--train-layers", layers, "-q"]
    environment = dict(os.environ, PYTHONPATH=str(REPO / "DENExtractor"))
    start = time.perf_counter()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"den-train failed on {cases} cases: {finished.stderr}")
    peak_kb = int(finished.stderr.strip().splitlines()[-1].split()[1])
    record = json.loads((model_dir / "den_trained.json").read_text())
    return peak_kb / 1024**2, elapsed, record["slices"]["train"] + record["slices"]["val"]


def main() -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each training step")
    parser.add_argument("--small", type=int, default=8, help="cases in the small cohort")
    parser.add_argument("--large", type=int, default=32, help="cases in the large cohort")
    arguments = parser.parse_args()
    from DENExtractorLib.network.model import import_keras

    import_keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"device: {'GPU ' + gpus[0].name if gpus else 'CPU'} ({os.cpu_count()} cores visible), batch {BATCH}")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as temporary:
        folder = Path(temporary)
        throughput(folder, arguments.repeats)
        for layers, epochs in (("dense", 2), ("all", 1)):
            for cases in (arguments.small, arguments.large):
                rss, seconds, slices = peak_rss(folder, cases, layers, epochs)
                print(f"den-train --train-layers {layers:5s} {cases:3d} cases ({slices:4d} slices), {epochs} epoch(s): "
                      f"peak RSS {rss:.2f} GB (target <= 2.5), {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
