"""A generated labelled cohort whose label is visible in the segmentation: a large necrotic core, or none.

Each case is :func:`DENExtractorLib.demo.synthetic_glioblastoma` with its own seed. In the ``present`` cases the
whole tumour core but its outer voxel layer (the enhancing rim) is necrotic (label 1); in the ``absent`` cases
the necrotic core is filled with enhancing tumour (label 4). Used by the tests, the benchmark and the
README's example, so that ``den-train`` can be tried without data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel
import numpy as np

from ..demo import ENHANCING, NECROSIS, NON_ENHANCING, synthetic_glioblastoma
from ..outputs.atomic import write_atomically

LABEL_COLUMN = "necrosis"
CLASSES = ("absent", "present")


def write_labelled_cohort(folder: str | Path, cases: int = 12, shape: tuple[int, int, int] = (48, 48, 24),
                          seed: int = 0) -> Path:
    """Write ``cases`` synthetic label maps (classes alternating) and ``labels.csv``; return the CSV's path.

    The CSV has the columns ``case_id, segmentation, necrosis`` with paths relative to ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(cases):
        case_id = f"syn{index:03d}"
        label = CLASSES[index % 2]
        labels, affine = synthetic_glioblastoma(shape, seed=seed + index)
        if label == "absent":
            labels[labels == NECROSIS] = ENHANCING
        else:
            labels[_inner(np.isin(labels, (NECROSIS, NON_ENHANCING, ENHANCING)))] = NECROSIS
        image = nibabel.Nifti1Image(labels, affine)
        write_atomically(folder / f"{case_id}.nii.gz", lambda path, picture=image: nibabel.save(picture, str(path)))
        rows.append([case_id, f"{case_id}.nii.gz", label])

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "segmentation", LABEL_COLUMN])
            writer.writerows(rows)

    return write_atomically(folder / "labels.csv", write)


def _inner(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` whose six face neighbours are all in ``mask`` (a one-voxel erosion)."""
    padded = np.pad(mask, 1)
    inner = mask.copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return inner
