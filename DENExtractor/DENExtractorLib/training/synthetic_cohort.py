"""Generated labelled cohorts, so that ``den-train`` can be tried and tested without data.

:func:`write_labelled_cohort`: a label visible in the segmentation, a large necrotic core or none. Each case is
:func:`DENExtractorLib.demo.synthetic_glioblastoma` with its own seed. In the ``present`` cases the whole tumour
core but its outer voxel layer (the enhancing rim) is necrotic (label 1) (with ``whole_lesion``: the whole lesion,
oedema included, but its outer layer, a far stronger signal); in the ``absent`` cases the necrotic core is filled
with enhancing tumour (label 4). :func:`write_permuted_labels` writes the same cases with labels shuffled (nothing
to learn). :func:`write_grouped_cohort`: several scans per patient (the same tumour, shifted by a voxel or two),
with a label drawn per patient that nothing in the images predicts: a model can only learn who the patient is.
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
                          seed: int = 0, whole_lesion: bool = False) -> Path:
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
            lesion = labels > 0 if whole_lesion else np.isin(labels, (NECROSIS, NON_ENHANCING, ENHANCING))
            labels[_inner(lesion)] = NECROSIS
        _write_map(folder / f"{case_id}.nii.gz", labels, affine)
        rows.append([case_id, f"{case_id}.nii.gz", label])
    return _write_csv(folder / "labels.csv", ["case_id", "segmentation", LABEL_COLUMN], rows)


def write_permuted_labels(labels_csv: str | Path, output: str | Path, seed: int, column: str = LABEL_COLUMN) -> Path:
    """Copy a cases CSV with the values of ``column`` shuffled over the rows by ``seed``."""
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    position = header.index(column)
    shuffled = [rows[index][position] for index in np.random.RandomState(seed).permutation(len(rows))]
    for row, label in zip(rows, shuffled, strict=True):
        row[position] = label
    return _write_csv(Path(output), header, rows)


def write_grouped_cohort(folder: str | Path, patients: int = 12, scans: int = 3,
                         shape: tuple[int, int, int] = (32, 32, 16), seed: int = 0) -> Path:
    """Write ``scans`` label maps per patient (one tumour, shifted) and ``labels.csv`` with columns ``case_id,
    segmentation, group, patient_class``; the class is balanced over patients in a seeded random order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.RandomState(seed)
    classes = [CLASSES[index % 2] for index in generator.permutation(patients)]
    rows = []
    for patient in range(patients):
        labels, affine = synthetic_glioblastoma(shape, seed=seed + 1000 + patient)
        for scan in range(scans):
            case_id = f"pt{patient:02d}s{scan}"
            shifted = np.roll(labels, tuple(generator.randint(-1, 2, size=3)), axis=(0, 1, 2))
            _write_map(folder / f"{case_id}.nii.gz", shifted, affine)
            rows.append([case_id, f"{case_id}.nii.gz", f"pt{patient:02d}", classes[patient]])
    return _write_csv(folder / "labels.csv", ["case_id", "segmentation", "group", "patient_class"], rows)


def _write_map(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    """Write a label map as NIfTI, atomically."""
    image = nibabel.Nifti1Image(labels, affine)
    write_atomically(path, lambda temporary: nibabel.save(image, str(temporary)))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a CSV atomically."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    return write_atomically(path, write)


def _inner(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` whose six face neighbours are all in ``mask`` (a one-voxel erosion)."""
    padded = np.pad(mask, 1)
    inner = mask.copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return inner
