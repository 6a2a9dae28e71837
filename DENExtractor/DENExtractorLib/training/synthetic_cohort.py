"""A generated labelled cohort whose label is visible in the segmentation: a necrotic core present or absent.

Each case is :func:`DENExtractorLib.demo.synthetic_glioblastoma` with its own seed; in the ``absent`` cases the
necrotic core (label 1) is filled with enhancing tumour (label 4). Used by the tests, the benchmark and the
README's example, so that ``den-train`` can be tried without data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel

from ..atomic import write_atomically
from ..demo import ENHANCING, NECROSIS, synthetic_glioblastoma

LABEL_COLUMN = "necrosis"
CLASSES = ("absent", "present")


def write_labelled_cohort(folder: str | Path, cases: int = 12, shape: tuple[int, int, int] = (48, 48, 24),
                          seed: int = 0) -> Path:
    """Write ``cases`` synthetic label maps (classes alternating) and ``labels.csv``; return the CSV's path.

    The CSV has the columns ``case_id, segmentation, necrosis`` with paths relative to ``folder``.
    """
    folder = Path(folder)
    rows = []
    for index in range(cases):
        case_id = f"syn{index:03d}"
        label = CLASSES[index % 2]
        labels, affine = synthetic_glioblastoma(shape, seed=seed + index)
        if label == "absent":
            labels[labels == NECROSIS] = ENHANCING
        image = nibabel.Nifti1Image(labels, affine)
        write_atomically(folder / f"{case_id}.nii.gz", lambda path, picture=image: nibabel.save(picture, str(path)))
        rows.append([case_id, f"{case_id}.nii.gz", label])

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "segmentation", LABEL_COLUMN])
            writer.writerows(rows)

    return write_atomically(folder / "labels.csv", write)
