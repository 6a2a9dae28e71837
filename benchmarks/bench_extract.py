"""Benchmark: DEN extraction against the published pipeline, on the same machine, in one run.

Usage: ``python benchmarks/bench_extract.py [--repeats N] [--skip-naive] [--skip-cohort] [--skip-oriented]``

Prints, with runs interleaved (every path once per round, the order rotating) and medians with min and max:

1. per volume, on each shared BraTS case, with the model built once and warm:
   - the published pipeline's own path: read with nibabel, resize all slices, one ``model.predict`` on the stack;
   - the naive per-slice path: the same preprocessing, then ``model.predict`` on every slice alone;
   - DENExtractor with the full network on every foreground batch (windows off);
   - DENExtractor as shipped: each batch computed only where it differs from the empty slice (windowed);
   and whether the windowed features equal the full ones bitwise;
2. a cold 4-case cohort (``den-extract --cohort``) as whole processes, windowed vs windows off, with peak RSS;
3. oriented vs reference mode on a generated 512x512x400 label map (target: oriented within 1.5x).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BRATS_CASES = [DATA / "brats2015" / case / "OTMultiClass.nii.gz" for case in ("pat0001", "pat0002")]
CAPTK_CASE = DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz"
LARGE_SHAPE = (512, 512, 400)

COHORT_PROCESS = """
import sys
from DENExtractorLib import cli
if sys.argv[1] == "full":
    from DENExtractorLib.network import LoadedModel
    from DENExtractorLib.network.windowed import WindowedNetwork
    def full_network(model):
        if model._windowed is None:
            model._windowed = WindowedNetwork(model.model.layers, model.predict, full_path_fraction=-1.0)
        return model._windowed
    LoadedModel.windowed = full_network
sys.exit(cli.main(sys.argv[2:]))
"""
"""A whole den-extract process; ``full`` as first argument sends every batch through the full network."""


def published_path(path: Path, keras_model) -> np.ndarray:
    """The published script: read, resize every slice, normalise the stack, one ``model.predict`` on it."""
    import nibabel
    from PIL import Image

    data = nibabel.load(str(path)).get_fdata()
    slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
    stack = np.expand_dims(np.array(slices) / np.max(slices), axis=-1)
    return keras_model.predict(stack, verbose=0)


def naive_path(path: Path, keras_model) -> np.ndarray:
    """The published preprocessing, then ``model.predict`` on every slice alone."""
    import nibabel
    from PIL import Image

    data = nibabel.load(str(path)).get_fdata()
    slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
    stack = np.expand_dims(np.array(slices) / np.max(slices), axis=-1)
    return np.concatenate([keras_model.predict(stack[s : s + 1], verbose=0) for s in range(len(stack))])


def interleaved(paths: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Run every path once per round, rotating the order; return each path's times and last result."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    results: dict[str, object] = {}
    names = list(paths)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            results[name] = paths[name]()
            times[name].append(time.perf_counter() - start)
    return times, results


def summary(values: list[float]) -> str:
    """Median with min and max."""
    return f"{statistics.median(values):7.2f} s  (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def ratio(numerator: list[float], denominator: list[float]) -> str:
    """Ratio of medians, with the ratio of the best and of the worst runs."""
    best, worst = min(numerator) / min(denominator), max(numerator) / max(denominator)
    return f"{statistics.median(numerator) / statistics.median(denominator):5.2f}x (best/best {best:.2f}, worst/worst {worst:.2f})"


def per_volume(repeats: int, naive: bool) -> None:
    """Section 1: the four paths per BraTS volume, model built once and warm."""
    from DENExtractorLib import DENExtractor
    from DENExtractorLib.extraction.preprocessing import preprocess
    from DENExtractorLib.extraction.stack_features import batch_bounds
    from DENExtractorLib.network.architecture import FLOPS_PER_SLICE
    from DENExtractorLib.network.windowed import WindowedNetwork, nonzero_window
    from DENExtractorLib.readers import load_segmentation

    extractor = DENExtractor()
    model = extractor.model
    windowed = model.windowed()
    full = WindowedNetwork(model.model.layers, model.predict, full_path_fraction=-1.0)

    def ours(network: WindowedNetwork, path: Path):
        model._windowed = network
        return extractor.extract_file(path)

    print("== 1. per volume, model built once and warm (seconds per volume) ==")
    for path in BRATS_CASES:
        published_path(path, model.model)  # warm-up: traces predict
        ours(windowed, path), ours(full, path)
        paths = {
            "published (one model.predict on the stack)": lambda path=path: published_path(path, model.model),
            "DENExtractor, full network (windows off)": lambda path=path: ours(full, path),
            "DENExtractor, windowed (as shipped)": lambda path=path: ours(windowed, path),
        }
        if naive:
            paths["naive (model.predict per slice)"] = lambda path=path: naive_path(path, model.model)
        times, results = interleaved(paths, repeats)
        published, ours_full, ours_windowed = (times[name] for name in list(paths)[:3])
        stack = preprocess(load_segmentation(path))
        fractions = [windowed.work_fraction(windowed.windows(nonzero_window(stack.batch(a, b))))
                     for a, b in batch_bounds(len(stack.foreground_rows))]
        reference = results["published (one model.predict on the stack)"]
        features = results["DENExtractor, windowed (as shipped)"].features
        print(f"{path.parent.name}: {len(stack.foreground_rows)} of {stack.row_count} slices hold tumour; windowed work "
              f"per batch {', '.join(f'{f:.0%}' for f in fractions)} of the full network's")
        for name, values in times.items():
            print(f"  {name:45s} {summary(values)}")
        print(f"  windowed vs published:  {ratio(published, ours_windowed)}   (target >= 4)")
        if naive:
            print(f"  windowed vs naive:      {ratio(times['naive (model.predict per slice)'], ours_windowed)}")
        print(f"  full vs published:      {ratio(published, ours_full)}")
        print(f"  windowed vs full:       {ratio(ours_full, ours_windowed)}")
        full_features = results["DENExtractor, full network (windows off)"].features
        print(f"  windowed == full features bitwise: {np.array_equal(features, full_features)}; "
              f"max |published - ours| / max|published| = {np.max(np.abs(reference - features)) / np.max(np.abs(reference)):.1e}")
        computed = len(stack.foreground_rows) + 1
        print(f"  full network rate: {computed * FLOPS_PER_SLICE / statistics.median(ours_full) / 1e9:.0f} GFLOP/s "
              f"over the {computed} computed slices, reading and preprocessing included")
    print(f"numpy float32 GEMM in this run: {gemm_gflops():.0f} GFLOP/s (4096x4096)")
    model._windowed = windowed


def gemm_gflops(size: int = 4096, repeats: int = 3) -> float:
    """Best float32 matrix-product rate numpy reaches here, in GFLOP/s."""
    generator = np.random.default_rng(0)
    a, b = generator.random((size, size), dtype=np.float32), generator.random((size, size), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cold_cohort(repeats: int, workspace: Path) -> None:
    """Section 2: a 4-case cohort as whole den-extract processes (TensorFlow import and model build included)."""
    from DENExtractorLib.demo import write_synthetic_case

    cohort = workspace / "cohort"
    for case, source in (("pat0001", BRATS_CASES[0]), ("pat0002", BRATS_CASES[1]), ("captk", CAPTK_CASE)):
        (cohort / case).mkdir(parents=True)
        shutil.copyfile(source, cohort / case / "seg.nii.gz")
    (cohort / "synthetic").mkdir()
    write_synthetic_case(cohort / "synthetic" / "seg.nii.gz")

    def process(kind: str) -> Callable[[], None]:
        def run() -> None:
            output = workspace / f"out_{kind}"
            shutil.rmtree(output, ignore_errors=True)
            command = [sys.executable, "-c", COHORT_PROCESS, kind, "--cohort", str(cohort), "--pattern", "{id}/seg.nii.gz",
                       "-o", str(output), "--no-png", "-q"]
            subprocess.run(command, check=True, capture_output=True, cwd=REPO)
        return run

    times, _ = interleaved({"windowed": process("windowed"), "full": process("full")}, repeats)
    same = all(
        np.array_equal(np.load(workspace / "out_windowed" / f"{case}_den.npy"), np.load(workspace / "out_full" / f"{case}_den.npy"))
        for case in ("pat0001", "pat0002", "captk", "synthetic")
    )
    print("== 2. cold 4-case cohort (pat0001, pat0002, CaPTk mask, synthetic), whole den-extract processes ==")
    print(f"  windowed (as shipped)  {summary(times['windowed'])}")
    print(f"  windows off            {summary(times['full'])}")
    print(f"  windowed vs windows off: {ratio(times['full'], times['windowed'])}; features bitwise equal: {same}")
    print(f"  peak RSS of the largest cohort process: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2:.2f} GB")


def large_volume(workspace: Path) -> Path:
    """A 512x512x400 label map: the synthetic glioblastoma at 128x128x100, each voxel repeated 4x4x4, as NIfTI."""
    import nibabel
    from DENExtractorLib.demo import synthetic_glioblastoma

    small, affine = synthetic_glioblastoma(tuple(n // 4 for n in LARGE_SHAPE), seed=5)
    labels = np.asfortranarray(small.repeat(4, axis=0).repeat(4, axis=1).repeat(4, axis=2))
    path = workspace / "large_512x512x400.nii"
    nibabel.save(nibabel.Nifti1Image(labels, affine @ np.diag([0.25, 0.25, 0.25, 1.0])), str(path))
    return path


def oriented_vs_reference(repeats: int, workspace: Path) -> None:
    """Section 3: both modes on a generated 512x512x400 label map, model built once and warm."""
    from DENExtractorLib import DENExtractor

    path = large_volume(workspace)
    reference, oriented = DENExtractor(), DENExtractor(mode="oriented")
    reference.extract_file(path), oriented.extract_file(path)  # warm-up: builds each extractor's model
    modes = {"reference": lambda: reference.extract_file(path), "oriented": lambda: oriented.extract_file(path)}
    times, results = interleaved(modes, repeats)
    print(f"== 3. oriented vs reference mode, generated {'x'.join(map(str, LARGE_SHAPE))} uint8 label map, whole extraction ==")
    for name, values in times.items():
        rows = results[name]
        print(f"  {name:10s} {summary(values)}  ({len(rows.foreground_rows)} of {rows.features.shape[0]} slices hold tumour)")
    print(f"  oriented / reference: {ratio(times['oriented'], times['reference'])}   (target <= 1.5)")


def main() -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of interleaved runs per section (default 5)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive per-slice path (about 30 s a run)")
    parser.add_argument("--skip-cohort", action="store_true", help="leave out the cold cohort")
    parser.add_argument("--skip-oriented", action="store_true", help="leave out the 512x512x400 volume")
    arguments = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores; load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    per_volume(arguments.repeats, naive=not arguments.skip_naive)
    with tempfile.TemporaryDirectory(prefix="den_bench_") as folder:
        if not arguments.skip_cohort:
            cold_cohort(arguments.repeats, Path(folder))
        if not arguments.skip_oriented:
            oriented_vs_reference(arguments.repeats, Path(folder))
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
