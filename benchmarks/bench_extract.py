"""Benchmark: DEN extraction against the naive published path, on the same machine, in one run.

Usage: ``python benchmarks/bench_extract.py [SEGMENTATION]`` (default ``../shared/data/brats2015/pat0001``).

Prints seconds per volume for (a) the naive reference path (per-slice preprocessing, then ``model.predict`` on
every slice, as the published code does) and (b) ``DENExtractorLib.extract``, both with the model already built;
their ratio; the GFLOP/s our path reaches over the slices it actually computes (2.618 GFLOP each); numpy's
float32 GEMM GFLOP/s measured in the same run and the ratio of the two; and the peak RSS of our path.
Targets: ratio >= 5, >= 70 % of the GEMM rate, peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CASE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2015" / "pat0001" / "OTMultiClass.nii.gz"
GEMM_SIZE = 4096


def naive_reference(path: Path, model) -> np.ndarray:
    """The published path: read, resize every slice, normalise, then ``model.predict`` slice by slice."""
    import nibabel
    from PIL import Image

    data = nibabel.load(str(path)).get_fdata()
    slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
    stack = np.expand_dims(np.array(slices) / np.max(slices), axis=-1)
    return np.concatenate([model.predict(stack[s : s + 1], verbose=0) for s in range(len(stack))])


def ours(path: Path):
    """DENExtractor's path: read and validate, preprocess foreground slices, batched inference."""
    from DENExtractorLib import extract, load_segmentation

    return extract(load_segmentation(path))


def gemm_gflops(repeats: int = 5) -> float:
    """Best float32 matrix-product rate numpy reaches here, in GFLOP/s."""
    generator = np.random.default_rng(0)
    a = generator.random((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = generator.random((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_SIZE**3 / best / 1e9


def timed(function, *arguments, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*arguments)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("segmentation", nargs="?", type=Path, default=DEFAULT_CASE)
    parser.add_argument("--repeats", type=int, default=3, help="runs of our path (median reported)")
    arguments = parser.parse_args()
    path = arguments.segmentation
    if path.is_dir():
        path = path / "OTMultiClass.nii.gz"

    from DENExtractorLib.architecture import FLOPS_PER_SLICE
    from DENExtractorLib.network import load_model

    model = load_model()  # built once, shared by both paths
    ours(path)  # warm-up: traces the inference function once
    our_seconds, result = timed(ours, path, repeats=arguments.repeats)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    naive_seconds, naive_features = timed(naive_reference, path, model.model, repeats=1)
    computed = len(result.foreground_rows) + 1
    our_gflops = computed * FLOPS_PER_SLICE / our_seconds / 1e9
    gemm = gemm_gflops()
    difference = float(np.max(np.abs(naive_features - result.features)) / np.max(np.abs(naive_features)))

    print(f"case: {path} ({result.features.shape[0]} slices, {computed} computed)")
    print(f"naive reference path: {naive_seconds:8.2f} s/volume")
    print(f"DENExtractor:         {our_seconds:8.2f} s/volume  (median of {arguments.repeats})")
    print(f"speed-up:             {naive_seconds / our_seconds:8.1f} x   (target >= 5)")
    print(f"our rate:             {our_gflops:8.1f} GFLOP/s over computed slices ({FLOPS_PER_SLICE / 1e9:.3f} GFLOP each)")
    print(f"numpy fp32 GEMM:      {gemm:8.1f} GFLOP/s ({GEMM_SIZE}x{GEMM_SIZE})")
    print(f"ours / GEMM:          {our_gflops / gemm:8.0%}   (target >= 70 %)")
    print(f"peak RSS (our path):  {peak_rss_gb:8.2f} GB   (target <= 1.5 GB)")
    print(f"max |naive - ours| / max|naive|: {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
