"""The golden outputs of a real cohort: what den-extract writes for the shared real cases, pinned per environment.

The features' bits depend on the machine (the CPU, the instruction set oneDNN's kernels use, the TensorFlow build:
the provenance's ``compute.bits_key`` condenses them), never on the runner or the core count. So the pins in
``Testing/data/golden_outputs.json`` hold two kinds of values:

- **per environment** (keyed by ``bits_key``): the sha256 of each case's ``.npy``, of its cohort-table row and of its
  stable provenance fields. Where the running environment's key is pinned, these are compared bitwise.
- **for every environment**: the digests of the row and of the provenance without the feature values and the
  ``.npy`` checksum (columns, settings, inputs, preprocessing: nothing there may move on another CPU), and reference
  features in ``Testing/data/golden_features.npz`` (per case: the empty slice's row, the first, middle and last
  foreground rows, and the 8192-value pooled vector). Where the key is not pinned, the features must lie within
  :data:`RELATIVE_TOLERANCE` of the largest reference feature, and the comparison says that bitwise was not checked.

``python Testing/golden_outputs.py --pin`` runs the golden cohort with the code on the path and adds this
environment's digests (``--pin --reference`` also rewrites the shared reference values: only on purpose, when a
change of the code moves numbers everywhere; see CHANGELOG.md). What is left out of the provenance, everywhere:
the fields that change from run to run or from folder to folder (the time it was made, the seconds it took, the
command line, the absolute paths, the software and compute entries and the heatmap's sha256).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import DATA

PINS = Path(__file__).resolve().parent / "data" / "golden_outputs.json"
REFERENCE_FEATURES = PINS.with_name("golden_features.npz")

RELATIVE_TOLERANCE = 1e-5
"""Features from another environment must lie within this fraction of the largest reference feature (measured:
another instruction set moves them by about 1e-7 of it, the published script at another thread count by 2e-6)."""

GOLDEN_CASES = (
    ("pat0001", "brats2015/pat0001/OTMultiClass.nii.gz", ""),
    ("pat0001_t1c", "brats2015/pat0001/OTMultiClass.nii.gz", "brats2015/pat0001/T1c_subtrMeanDivStd.nii.gz"),
    ("pat0002", "brats2015/pat0002/OTMultiClass.nii.gz", ""),
    ("pat0002_flair", "brats2015/pat0002/OTMultiClass.nii.gz", "brats2015/pat0002/Flair_subtrMeanDivStd.nii.gz"),
    ("captk", "captk_AAAC0/AAAC0_flair_pp_shrunk_testTumor.nii.gz", ""),
    ("captk_flair", "captk_AAAC0/AAAC0_flair_pp_shrunk_testTumor.nii.gz", "captk_AAAC0/AAAC0_flair_pp_shrunk.nii.gz"),
    ("slicer_seg", "slicerio/Segmentation.seg.nrrd", ""),
    ("slicer_seg_ct", "slicerio/Segmentation.seg.nrrd", "slicerio/CTChest4.nrrd"),
)
"""The real cases of the golden cohort: case id, segmentation and (image mode) MRI, relative to the shared data."""

RUN_DEPENDENT = ("created", "elapsed_seconds", "command_line", "software", "compute", "record_sha256")
"""Provenance fields that differ from run to run or machine to machine (``record_sha256`` is the checksum of the
whole record, run-dependent fields included)."""

FEATURE_COLUMN_PREFIXES = (b"mean_", b"max_")
"""The cohort table's columns that hold pooled feature values."""


@dataclass(frozen=True)
class GoldenComparison:
    """How a run's outputs compared with the pins: ``bitwise`` where this environment is pinned, else ``tolerance``.

    ``differing``: the cases (and what) that did not match; ``max_relative_difference``: the largest difference of
    a reference feature, relative to the largest reference feature (0.0 in bitwise mode when all match).
    """

    mode: str
    differing: dict[str, list[str]]
    max_relative_difference: float
    pinned_in: list[str]
    this_run: dict

    def report(self) -> str:
        """One paragraph for the test output: what was checked, and where bitwise was not."""
        if self.mode == "bitwise":
            return f"golden outputs: bitwise, environment {self.this_run['bits_key']} is pinned"
        return (f"golden outputs: TOLERANCE, bitwise not checked here: environment {self.this_run['bits_key']} "
                f"({self.this_run['device']}, {self.this_run['instruction_set']}) is not pinned (pinned: "
                f"{', '.join(self.pinned_in)}); largest feature difference {self.max_relative_difference:.2e} of "
                f"the largest feature (allowed {RELATIVE_TOLERANCE:.0e})")


def write_golden_csv(folder: Path, case_ids: tuple[str, ...] | None = None) -> Path:
    """The cases CSV of the golden cohort (or of ``case_ids`` of it) in ``folder`` (absolute paths into the data)."""
    lines = ["case_id,segmentation,image"]
    for case_id, segmentation, image in GOLDEN_CASES:
        if case_ids is None or case_id in case_ids:
            lines.append(f"{case_id},{DATA / segmentation},{DATA / image if image else ''}")
    path = folder / "golden_cases.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_golden_cohort(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """Run ``den-extract --cases`` on the golden cohort into ``folder/out``; return the output folder."""
    from DENExtractorLib.cli.extract import main

    out = folder / "out"
    status = main(["--cases", str(write_golden_csv(folder)), "-o", str(out), "--quiet", *extra])
    if status != 0:
        raise AssertionError(f"den-extract exited with {status}")
    return out


def _sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _stable_provenance(provenance: dict, *, with_features: bool) -> bytes:
    """A provenance record without its run-dependent fields, paths relative to the shared data, as JSON bytes;
    without the ``.npy`` checksum unless ``with_features``."""
    stable = {key: value for key, value in provenance.items() if key not in RUN_DEPENDENT}
    for key in ("input", "image"):
        if stable.get(key):
            stable[key] = dict(stable[key], source=str(Path(stable[key]["source"]).relative_to(DATA)))
    outputs = {kind: entry for kind, entry in stable["outputs"].items() if kind != "png"}
    if not with_features:
        outputs = {kind: {**entry, "sha256": None} for kind, entry in outputs.items()}
    stable["outputs"] = outputs
    # any other absolute path into the shared data (the image of image mode's normalisation) relative too
    return json.dumps(stable, sort_keys=True).replace(str(DATA), "<shared data>").encode()


def _row_without_features(header: bytes, row: bytes) -> bytes:
    """A cohort-table row with its pooled feature values left out."""
    keep = [not name.startswith(FEATURE_COLUMN_PREFIXES) for name in header.split(b",")]
    return b",".join(value for value, kept in zip(row.split(b","), keep, strict=True) if kept)


def _table_rows(out: Path) -> tuple[bytes, dict[str, bytes]]:
    """The cohort table's header and rows by case id, input paths relative to the shared data."""
    rows = (out / "den_cohort.csv").read_bytes().split(b"\r\n")
    by_case = {row.split(b",", 1)[0].decode(): row.replace(str(DATA).encode(), b"<shared data>") for row in rows[1:] if row}
    return rows[0], by_case


def output_digests(out: Path, case_ids: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Per case: the environment's digests (``npy``, ``csv``, ``provenance``) and the environment-free ones
    (``csv_without_features``, ``provenance_without_features``); ``header``: the table's header."""
    header, by_case = _table_rows(out)
    digests = {"header": {"csv": _sha256(header)}}
    for case_id in case_ids:
        provenance = json.loads((out / f"{case_id}_den.json").read_text(encoding="utf-8"))
        digests[case_id] = {
            "npy": _sha256((out / f"{case_id}_den.npy").read_bytes()),
            "provenance": _sha256(_stable_provenance(provenance, with_features=True)),
            "csv": _sha256(by_case[case_id]),
            "provenance_without_features": _sha256(_stable_provenance(provenance, with_features=False)),
            "csv_without_features": _sha256(_row_without_features(header, by_case[case_id])),
        }
    return digests


def reference_values(out: Path, case_id: str) -> np.ndarray:
    """The values of a case compared within tolerance: the empty row, the first, middle and last foreground rows,
    then the pooled vector (mean then max over the foreground rows), as one float32 vector."""
    features = np.load(out / f"{case_id}_den.npy")
    provenance = json.loads((out / f"{case_id}_den.json").read_text(encoding="utf-8"))
    foreground = provenance["features"]["foreground_rows"]
    empty = [row for row in range(len(features)) if row not in set(foreground)][:1]
    chosen = features[[*empty, foreground[0], foreground[len(foreground) // 2], foreground[-1]]]
    pooled = np.concatenate([features[foreground].mean(axis=0), features[foreground].max(axis=0)])
    return np.concatenate([chosen.ravel(), pooled]).astype(np.float32)


def run_environment(out: Path, case_id: str) -> dict:
    """The compute entry of a case's provenance (``bits_key``: what decides the features' bits)."""
    return json.loads((out / f"{case_id}_den.json").read_text(encoding="utf-8"))["compute"]


def compare_with_pins(out: Path, case_ids: tuple[str, ...] | None = None) -> GoldenComparison:
    """Compare the outputs of (some of) the golden cases in ``out`` with the pins: bitwise where this run's
    environment is pinned, else within :data:`RELATIVE_TOLERANCE` and with the environment-free digests."""
    case_ids = case_ids or tuple(case for case, _, _ in GOLDEN_CASES)
    pins = json.loads(PINS.read_text(encoding="utf-8"))
    found = output_digests(out, case_ids)
    this_run = run_environment(out, case_ids[0])
    pinned = pins["environments"].get(this_run["bits_key"])
    differing: dict[str, list[str]] = {}
    if found["header"] != pins["header"]:
        differing["header"] = ["csv"]
    kinds = ("npy", "csv", "provenance") if pinned else ("csv_without_features", "provenance_without_features")
    for case_id in case_ids:
        expected = {**pins["cases"][case_id], **(pinned["digests"][case_id] if pinned else {})}
        wrong = [kind for kind in kinds if found[case_id][kind] != expected[kind]]
        if wrong:
            differing[case_id] = wrong
    largest = 0.0
    with np.load(REFERENCE_FEATURES) as references:
        for case_id in case_ids:
            reference = references[case_id]
            difference = float(np.max(np.abs(reference_values(out, case_id) - reference))) / float(np.max(np.abs(reference)))
            largest = max(largest, difference)
            if not pinned and difference > RELATIVE_TOLERANCE:
                differing.setdefault(case_id, []).append(f"features differ by {difference:.2e} of the largest")
    return GoldenComparison("bitwise" if pinned else "tolerance", differing, largest,
                            sorted(f"{key} ({entry['compute']['device']}, {entry['compute']['instruction_set']})"
                                   for key, entry in pins["environments"].items()), this_run)


def pin(out: Path, *, reference: bool) -> dict:
    """The pins file's content with this run's environment added (``reference``: the shared values rewritten from
    this run too, and every other environment's digests dropped, since they were made by other code)."""
    case_ids = tuple(case for case, _, _ in GOLDEN_CASES)
    digests = output_digests(out, case_ids)
    environment_kinds = ("npy", "csv", "provenance")
    pins = json.loads(PINS.read_text(encoding="utf-8")) if PINS.exists() and not reference else {"environments": {}}
    pins["header"] = digests.pop("header")
    pins["cases"] = {case: {kind: value for kind, value in entry.items() if kind not in environment_kinds}
                     for case, entry in digests.items()}
    compute = run_environment(out, case_ids[0])
    pins["environments"][compute["bits_key"]] = {
        "compute": compute,
        "software": json.loads((out / f"{case_ids[0]}_den.json").read_text(encoding="utf-8"))["software"],
        "digests": {case: {kind: entry[kind] for kind in environment_kinds} for case, entry in digests.items()},
    }
    if reference:
        np.savez_compressed(REFERENCE_FEATURES, **{case: reference_values(out, case) for case in case_ids})
    return pins


def main() -> int:
    """``--pin`` (and ``--reference``): run the golden cohort with the code on the path and write the pins."""
    import tempfile

    if sys.argv[1:] not in (["--pin"], ["--pin", "--reference"]):
        print("usage: python Testing/golden_outputs.py --pin [--reference]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="den_golden_") as folder:
        out = run_golden_cohort(Path(folder))
        pins = pin(out, reference="--reference" in sys.argv)
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
