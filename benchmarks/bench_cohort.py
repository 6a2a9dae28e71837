"""Benchmark: a cohort as users run it, whole processes, against the published script's own lines, in one run.

Usage: ``python benchmarks/bench_cohort.py [--rounds 3] [--compare-tree DIR] [--slice-by-slice] [--parallel N]``

The cohort is 8 real cases of ``../shared/data`` (a cases CSV): the BraTS label maps pat0001 and pat0002, the CaPTk
lesion mask and the Slicer ``Segmentation.seg.nrrd``, each under two ids. Each round runs every variant once, in a
rotating order (interleaved, so a slow spell of the shared machine hits every variant), each as a new process:

- **published script**: the published ``CNN_segmented_tumour_deepfeatures.py``'s own lines: its Keras model built
  once (Keras' own initialisers), then per case read the file, resize every slice with PIL, divide by the stack's
  maximum and **one** ``model.predict`` on the whole stack, ``np.save``;
- **den-extract**: ``den-extract --cases CSV -o OUT`` as shipped (heatmap PNG, provenance JSON and cohort table too);
- with ``--compare-tree DIR``: the same command run from another source tree (e.g. the code before a change);
- with ``--slice-by-slice``: the published lines but ``model.predict`` on every slice alone (labelled as such: it is
  not what the published script does, and is about 8x slower);
- with ``--parallel N``: ``den-extract --jobs N`` and Dask with N local workers.

A second part runs one case (pat0001) as a whole process: the published script on it vs ``den-extract CASE -o OUT``.

Printed per variant (medians with min and max over the rounds): wall and CPU seconds (user + system, the process
and its children), the time to the first finished case, start-up (first finished case minus one per-case time),
per-case seconds after the first (last finish minus first finish, over the remaining cases) and peak RSS; then the
ratios published / den-extract of wall and CPU medians. Each process reports its finished cases on stdout; times
are taken here as the lines arrive (the child runs unbuffered).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
COHORT = (
    ("brats_pat0001", "brats2015/pat0001/OTMultiClass.nii.gz"),
    ("brats_pat0002", "brats2015/pat0002/OTMultiClass.nii.gz"),
    ("captk_AAAC0", "captk_AAAC0/AAAC0_flair_pp_shrunk_testTumor.nii.gz"),
    ("slicer_segmentation", "slicerio/Segmentation.seg.nrrd"),
)
"""The distinct real cases (each appears twice in the cohort, under two ids)."""
SINGLE_CASE = DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz"
DONE_MARK = "case finished:"


def published_model():
    """The published script's network: its Sequential, Keras' default initialisers, compiled with Adam."""
    from tensorflow.keras.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, MaxPooling2D
    from tensorflow.keras.models import Sequential

    model = Sequential([
        Input(shape=(224, 224, 1)),
        Conv2D(96, (9, 9), strides=(4, 4), padding="valid", activation="relu"), BatchNormalization(),
        MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),
        Conv2D(256, (7, 7), strides=(1, 1), padding="same", activation="relu"), BatchNormalization(),
        MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),
        Conv2D(384, (3, 3), strides=(1, 1), padding="same", activation="relu"),
        Conv2D(384, (3, 3), strides=(1, 1), padding="same", activation="relu"),
        Conv2D(256, (3, 3), strides=(1, 1), padding="same", activation="relu"),
        MaxPooling2D(pool_size=(3, 3), strides=(2, 2)),
        Flatten(), Dense(4096, activation="relu"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def published_run(cases_csv: Path, out: Path, per_slice: bool) -> None:
    """The published script's lines over the cases of a CSV (run in its own process by the benchmark).

    NIfTI files are read with nibabel as the script does; the script reads no ``.seg.nrrd``, so those are read
    with pynrrd's reader (the label array as stored).
    """
    import csv

    import nibabel
    import nrrd
    import numpy as np
    from PIL import Image

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model = published_model()
    out.mkdir(parents=True, exist_ok=True)
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        path = row["segmentation"]
        data = nrrd.read(path)[0] if path.endswith(".nrrd") else nibabel.load(path).get_fdata()
        slices = [np.array(Image.fromarray(data[s].astype(np.uint8)).resize((224, 224))) for s in range(data.shape[0])]
        stack = np.expand_dims(np.array(slices) / np.max(slices), axis=-1)
        if per_slice:
            features = np.concatenate([model.predict(stack[s : s + 1], verbose=0) for s in range(len(stack))])
        else:
            features = model.predict(stack, verbose=0)
        np.save(out / f"{row['case_id']}.npy", features)
        print(f"{DONE_MARK} {row['case_id']}", flush=True)


def write_cohort(folder: Path) -> tuple[Path, int]:
    """The cases CSV of the cohort (each distinct case under two ids); return it and the number of cases."""
    lines = ["case_id,segmentation"]
    for copy in ("a", "b"):
        lines.extend(f"{case_id}_{copy},{DATA / relative}" for case_id, relative in COHORT)
    path = folder / "cases.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines) - 1


@dataclass
class Measure:
    """One whole-process run: wall and CPU seconds, finish times of its cases (from its start), peak RSS."""

    wall: float
    cpu: float
    finished: list[float]
    peak_gb: float

    @property
    def per_case(self) -> float:
        """Seconds per case after the first (the last finish minus the first, over the remaining cases)."""
        if len(self.finished) < 2:
            return float("nan")
        return (self.finished[-1] - self.finished[0]) / (len(self.finished) - 1)

    @property
    def startup(self) -> float:
        """Start-up: the first finished case minus one per-case time (for one case: its finish time)."""
        return self.finished[0] - (self.per_case if len(self.finished) > 1 else 0.0)


def run_measured(command: list[str], environment: dict[str, str], done_mark: str) -> Measure:
    """Run a command to its end; time the lines containing ``done_mark``; CPU time and peak RSS from wait4."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True)
    finished: list[float] = []
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr or []), daemon=True)
    reader.start()
    for line in process.stdout or []:
        if done_mark in line:
            finished.append(time.perf_counter() - started)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {''.join(errors)[-2000:]}")
    return Measure(wall, usage.ru_utime + usage.ru_stime, finished, usage.ru_maxrss / 1024**2)


@dataclass
class Variant:
    """A command to compare, the source tree it runs from and the stdout text marking a finished case."""

    command: list[str]
    tree: Path = REPO
    done_mark: str = DONE_MARK
    runs: list[Measure] = field(default_factory=list)


def den_extract(tree: Path, arguments: list[str]) -> Variant:
    """den-extract run from a source tree; a finished case prints ``ID: done, ...`` on stdout."""
    return Variant([sys.executable, "-m", "DENExtractorLib.cli", *arguments], tree, ": done, ")


def cohort_variants(cases_csv: Path, out: Path, arguments: argparse.Namespace) -> dict[str, Variant]:
    """The cohort commands compared, by name."""
    bench = [sys.executable, str(Path(__file__).resolve())]
    cases = ["--cases", str(cases_csv)]
    variants = {
        "published script (one predict per case)": Variant([*bench, "--published", str(cases_csv), str(out / "pub")]),
        "den-extract --cases": den_extract(REPO, [*cases, "-o", str(out / "den")]),
    }
    if arguments.compare_tree:
        variants[f"den-extract --cases from {arguments.compare_tree.name}"] = den_extract(
            arguments.compare_tree, [*cases, "-o", str(out / "compare")])
    if arguments.slice_by_slice:
        variants["published lines, predict slice by slice"] = Variant(
            [*bench, "--published", str(cases_csv), str(out / "slices"), "--per-slice"])
    if arguments.parallel:
        jobs = str(arguments.parallel)
        variants[f"den-extract --jobs {jobs}"] = den_extract(REPO, [*cases, "-o", str(out / "jobs"), "--jobs", jobs])
        variants[f"Dask, {jobs} local workers"] = den_extract(
            REPO, [*cases, "-o", str(out / "dask"), "--scheduler", "local", "--jobs", jobs])
    return variants


def single_variants(folder: Path, arguments: argparse.Namespace) -> dict[str, Variant]:
    """The one-case commands compared, by name."""
    csv_path = folder / "single.csv"
    csv_path.write_text(f"case_id,segmentation\npat0001,{SINGLE_CASE}\n", encoding="utf-8")
    bench = [sys.executable, str(Path(__file__).resolve())]
    variants = {
        "published script, one case": Variant([*bench, "--published", str(csv_path), str(folder / "pub1")]),
        "den-extract CASE -o OUT": den_extract(REPO, [str(SINGLE_CASE), "-o", str(folder / "den1")]),
    }
    if arguments.compare_tree:
        variants[f"den-extract CASE from {arguments.compare_tree.name}"] = den_extract(
            arguments.compare_tree, [str(SINGLE_CASE), "-o", str(folder / "compare1")])
    return variants


def interleave(variants: dict[str, Variant], rounds: int, folder: Path) -> None:
    """Run every variant once per round, the order rotating; output folders are removed before each run."""
    names = list(variants)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            variant = variants[name]
            for stale in folder.iterdir():
                if stale.is_dir():
                    shutil.rmtree(stale)
            environment = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(variant.tree / "DENExtractor"))
            measure = run_measured(variant.command, environment, variant.done_mark)
            variant.runs.append(measure)
            print(f"  round {round_number + 1}: {name}: wall {measure.wall:.1f} s, CPU {measure.cpu:.1f} s, "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)


def spread(values: list[float]) -> str:
    """Median with min and max."""
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def report(title: str, variants: dict[str, Variant], cases: int) -> None:
    """Print the table of one part and the ratios of the published script to every other variant."""
    print(f"\n== {title} ==")
    print(f"{'variant':45} {'wall s':>19} {'CPU s':>19} {'first case s':>19} {'start-up s':>19} "
          f"{'s/case after 1st':>19} {'peak GB':>7}")
    for name, variant in variants.items():
        runs = variant.runs
        if any(len(run.finished) != cases for run in runs):
            raise RuntimeError(f"{name}: expected {cases} finished cases, saw {[len(run.finished) for run in runs]}")
        per_case = spread([run.per_case for run in runs]) if cases > 1 else f"{'-':>19}"
        print(f"{name:45} {spread([r.wall for r in runs]):>19} {spread([r.cpu for r in runs]):>19} "
              f"{spread([r.finished[0] for r in runs]):>19} {spread([r.startup for r in runs]):>19} {per_case:>19} "
              f"{max(r.peak_gb for r in runs):7.2f}")
    published = next(iter(variants.values())).runs
    for name, variant in list(variants.items())[1:]:
        wall = statistics.median(r.wall for r in published) / statistics.median(r.wall for r in variant.runs)
        cpu = statistics.median(r.cpu for r in published) / statistics.median(r.cpu for r in variant.runs)
        print(f"  published / {name}: wall {wall:.2f}x, CPU time {cpu:.2f}x")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (how busy the shared machine is)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    """Run the rounds and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--compare-tree", type=Path, metavar="DIR", help="also run den-extract from this source tree")
    parser.add_argument("--slice-by-slice", action="store_true", help="also the published lines with per-slice predict")
    parser.add_argument("--parallel", type=int, metavar="N", help="also --jobs N and Dask with N local workers")
    parser.add_argument("--skip-single", action="store_true", help="leave out the one-case part")
    parser.add_argument("--published", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--per-slice", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.published is not None:
        published_run(*arguments.published, per_slice=arguments.per_slice)
        return 0
    print(f"{os.cpu_count()} CPU cores; load average before: {load_average()}")
    folder = Path(tempfile.mkdtemp(prefix="bench_cohort_"))
    try:
        cases_csv, count = write_cohort(folder)
        runs = folder / "runs"
        runs.mkdir()
        variants = cohort_variants(cases_csv, runs, arguments)
        interleave(variants, arguments.rounds, runs)
        report(f"cohort: {count} real cases, {arguments.rounds} interleaved rounds, whole processes", variants, count)
        if not arguments.skip_single:
            single = single_variants(runs, arguments)
            interleave(single, arguments.rounds, runs)
            report(f"one case (pat0001), {arguments.rounds} interleaved rounds, whole processes", single, 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
