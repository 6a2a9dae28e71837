"""The golden outputs of a real cohort: what den-extract writes for the shared real cases, as sha256 digests.

The pins in ``Testing/data/golden_outputs.json`` were computed once by the code before the start-up and per-case
speed work (issue 17) with ``python Testing/golden_outputs.py --pin``; ``test_speed_golden.py`` asserts that the
code today writes the same bytes. The ``.npy`` pins are still those first ones; the cohort rows and provenance
were pinned again, on purpose, when issues 15, 16, 18 and 19 added columns and fields (the record's checksum,
the effective settings and label scale, the first axis's anatomy, the settings columns, floats written as floats).
What is compared, per case: the ``.npy`` file's sha256, the case's row of ``den_cohort.csv``, and every provenance
field except those that change from run to run or from folder to folder (the time it was made, the seconds it
took, the command line, the absolute paths, and the heatmap's sha256: the picture is drawn by other code now, with
the same information on it). The software and compute entries are kept beside the pins: the features are bitwise
those of one TensorFlow build on one CPU family.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from helpers import DATA

PINS = Path(__file__).resolve().parent / "data" / "golden_outputs.json"

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
"""Provenance fields that differ from run to run or machine to machine (software and compute are kept beside the
pins; ``record_sha256`` is the checksum of the whole record, run-dependent fields included)."""


def write_golden_csv(folder: Path) -> Path:
    """The cases CSV of the golden cohort in ``folder`` (absolute paths into the shared data)."""
    lines = ["case_id,segmentation,image"]
    for case_id, segmentation, image in GOLDEN_CASES:
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


def _stable_provenance(provenance: dict) -> dict:
    """A provenance record without its run-dependent fields, paths relative to the shared data."""
    stable = {key: value for key, value in provenance.items() if key not in RUN_DEPENDENT}
    for key in ("input", "image"):
        if stable.get(key):
            stable[key] = dict(stable[key], source=str(Path(stable[key]["source"]).relative_to(DATA)))
    stable["outputs"] = {kind: entry for kind, entry in stable["outputs"].items() if kind != "png"}
    return stable


def output_digests(out: Path) -> dict[str, dict[str, str]]:
    """Per case: the sha256 of its ``.npy``, of its stable provenance fields and of its cohort-table row."""
    rows = (out / "den_cohort.csv").read_bytes().split(b"\r\n")
    by_case = {row.split(b",", 1)[0].decode(): row for row in rows[1:] if row}
    digests = {"header": {"csv": _sha256(rows[0])}}
    for case_id, _, _ in GOLDEN_CASES:
        provenance = json.loads((out / f"{case_id}_den.json").read_text(encoding="utf-8"))
        digests[case_id] = {
            "npy": _sha256((out / f"{case_id}_den.npy").read_bytes()),
            # any other absolute path into the shared data (the image of image mode's normalisation) relative too
            "provenance": _sha256(json.dumps(_stable_provenance(provenance), sort_keys=True)
                                  .replace(str(DATA), "<shared data>").encode()),
            # the row's input paths are absolute: compared relative to the shared data, wherever the checkout is
            "csv": _sha256(by_case[case_id].replace(str(DATA).encode(), b"<shared data>")),
        }
    return digests


def environment(out: Path) -> dict:
    """The software and compute entries of the first case's provenance (what the features depend on)."""
    provenance = json.loads((out / f"{GOLDEN_CASES[0][0]}_den.json").read_text(encoding="utf-8"))
    return {"software": provenance["software"], "compute": provenance["compute"]}


def main() -> int:
    """``--pin``: run the golden cohort with the code on the path and write the pins file."""
    import tempfile

    if sys.argv[1:] != ["--pin"]:
        print("usage: python Testing/golden_outputs.py --pin", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="den_golden_") as folder:
        out = run_golden_cohort(Path(folder))
        pins = {"environment": environment(out), "digests": output_digests(out)}
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
