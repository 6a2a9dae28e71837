"""The training cache in ``MODEL_DIR/cache``: each case's preprocessed slices, stored once, read back row by row.

Every case is preprocessed by :func:`DENExtractorLib.extraction.preprocessing.preprocess`, the very function extraction uses,
and only its tumour slices (the foreground rows) are stored, as ``.npy`` files read with plain file reads (no
memory map), so memory does not grow with the cohort. A case's entry is named by a key over its files' sha256 and
the preprocessing settings, so a rerun reuses it and any change recomputes it. Frozen-trunk outputs (``dense``
training) are cached the same way, keyed by the base weights as well.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import DENError, describe_error
from ..extraction.extractor import prepare_stack
from ..extraction.preprocessing import SliceStack
from ..outputs.atomic import write_atomically
from ..outputs.output_folder import prepare_output_folder
from ..readers import load_case, source_sha256
from ..settings import ExtractionSettings
from .labelled import Exclusion, LabelledCase, LabelledCohort

CACHE_FOLDER = "cache"
CACHE_FORMAT = "den-train-cache/1"
TRUNK_BATCH = 16
"""Slices per forward pass when computing frozen-trunk outputs (extraction's batch size)."""


@dataclass(frozen=True)
class CachedCase:
    """A case's ``slices`` stored rows in the ``.npy`` file ``inputs``: preprocessed slices (network input =
    row / ``divisor``, see :meth:`network_inputs`) or, for frozen-trunk entries, trunk outputs (read with
    :func:`read_rows`)."""

    case_id: str
    label_index: int
    inputs: Path
    divisor: float
    slices: int

    def network_inputs(self, rows: np.ndarray) -> np.ndarray:
        """The (n, 224, 224, 1) float32 network inputs of the given stored rows, converted as extraction does."""
        resized = read_rows(self.inputs, rows)
        return SliceStack(len(rows), np.arange(len(rows)), resized, self.divisor).batch(0, len(rows))


def cache_cases(cohort: LabelledCohort, model_dir: Path, settings: ExtractionSettings,
                on_case: Callable[[str, str], None] | None = None) -> tuple[list[CachedCase], list[Exclusion]]:
    """Preprocess (or reuse) every case of the cohort; return the cached cases and the cases that failed.

    ``on_case(case_id, status)`` is told "cached", "reused" or the failure message as each case finishes.
    """
    folder = prepare_output_folder(model_dir / CACHE_FOLDER)
    cached, failures = [], []
    for case in cohort.cases:
        try:
            entry, status = _cached_case(case, cohort.class_index(case), folder, settings)
            cached.append(entry)
        except DENError as error:
            failures.append(Exclusion(case.case_id, f"{error}: excluded"))
            status = failures[-1].message
        except Exception as error:  # an unforeseen fault in one case must not stop the others
            failures.append(Exclusion(case.case_id, f"{case.segmentation}: could not be processed "
                                                    f"({describe_error(error)}): excluded"))
            status = failures[-1].message
        if on_case is not None:
            on_case(case.case_id, status)
    return cached, failures


def cache_trunk_outputs(cases: list[CachedCase], key: str, predict: Callable[[np.ndarray], np.ndarray]) -> list[CachedCase]:
    """Store ``predict(inputs)`` (the frozen trunk) for every case's rows; return cases reading those outputs.

    ``key`` names what the outputs depend on (frozen weights, software), so other outputs are never reused.
    """
    derived = []
    for case in cases:
        target = case.inputs.with_name(case.inputs.name.replace(".npy", f".trunk-{key[:16]}.npy"))
        if not _complete_npy(target, case.slices):
            outputs = np.concatenate([
                predict(case.network_inputs(np.arange(start, min(start + TRUNK_BATCH, case.slices))))
                for start in range(0, case.slices, TRUNK_BATCH)
            ])
            write_atomically(target, functools.partial(_save_array, outputs))
        derived.append(CachedCase(case.case_id, case.label_index, target, 1.0, case.slices))
    return derived


def read_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    """Read the given rows (first-axis indices) of an ``.npy`` file with seeks and reads, not the whole file."""
    with open(path, "rb") as handle:
        shape, dtype, offset = _npy_layout(handle)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        out = np.empty((len(rows), *shape[1:]), dtype=dtype)
        for position, row in enumerate(rows):
            handle.seek(offset + int(row) * row_bytes)
            out[position] = np.frombuffer(handle.read(row_bytes), dtype=dtype).reshape(shape[1:])
    return out


def _cached_case(case: LabelledCase, label_index: int, folder: Path, settings: ExtractionSettings) -> tuple[CachedCase, str]:
    """The cache entry of one case, reused when its key matches, else computed and written atomically."""
    key = _case_key(case, settings)
    stem = key[:32]  # not the case id: any id, however long or exotic, gives a short, plain file name
    inputs, record_path = folder / f"{stem}.npy", folder / f"{stem}.json"
    record = _read_record(record_path)
    if record is not None and record.get("key") == key and _complete_npy(inputs, record.get("slices", -1)):
        return CachedCase(case.case_id, label_index, inputs, record["divisor"], record["slices"]), "reused"
    stack = _preprocessed(case, settings)
    write_atomically(inputs, lambda path: np.save(path, stack.resized, allow_pickle=False))
    record = {"format": CACHE_FORMAT, "key": key, "case_id": case.case_id, "slices": len(stack.foreground_rows),
              "rows": stack.row_count, "foreground_rows": [int(row) for row in stack.foreground_rows],
              "divisor": stack.divisor, "parameters": stack.parameters}
    text = json.dumps(record)
    write_atomically(record_path, lambda path: path.write_text(text, encoding="utf-8"))
    return CachedCase(case.case_id, label_index, inputs, stack.divisor, record["slices"]), "cached"


def _preprocessed(case: LabelledCase, settings: ExtractionSettings) -> SliceStack:
    """Read a case and preprocess it exactly as :meth:`DENExtractor.extract` does (labels kept, mode, plane, image)."""
    segmentation, image = load_case(case.segmentation, case.image)  # a DICOM SEG on its series' grid
    return prepare_stack(settings, segmentation, image)


def _case_key(case: LabelledCase, settings: ExtractionSettings) -> str:
    """sha256 over what determines a case's inputs: every byte its readers read, the settings, the version."""
    parts = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "segmentation": source_sha256(case.segmentation),
        "image": source_sha256(case.image) if case.image is not None else None,
        "mode": settings.mode,
        "plane": settings.effective_plane if settings.mode == "oriented" else None,
        "label_max": settings.label_scale if settings.mode == "oriented" else None,
        "labels": None if settings.labels is None else list(settings.labels),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read_record(path: Path) -> dict | None:
    """A cache record, or None if absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _complete_npy(path: Path, rows: int) -> bool:
    """Whether ``path`` is a readable ``.npy`` with ``rows`` rows whose data is all there."""
    try:
        with open(path, "rb") as handle:
            shape, dtype, offset = _npy_layout(handle)
        expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return shape[0] == rows and path.stat().st_size == expected
    except (OSError, ValueError):
        return False


def _npy_layout(handle) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of an ``.npy`` file (C order, no objects), from its header."""
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = reader(handle)
    if fortran_order or dtype.hasobject:
        raise ValueError("unexpected .npy layout")
    return tuple(shape), dtype, handle.tell()


def _save_array(array: np.ndarray, path: Path) -> None:
    """Save an array as ``.npy`` without pickles (the writer of :func:`write_atomically`)."""
    np.save(path, array, allow_pickle=False)
