"""A case's robustness outputs: ``{case}_robustness.npy`` (the pooled vector of every perturbed input, in the plan's
order) and ``{case}_robustness.json`` (its record: inputs, settings, weights, and each perturbation's kind,
parameters, seed and the sha256 of the label map it made), written together, the ``.json`` last with the ``.npy``'s
sha256, as extraction writes its three files (:mod:`..outputs.files`).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DENError
from ..hashing import file_sha256
from ..network.architecture import FEATURE_COUNT
from ..outputs.atomic import atomic_path
from ..outputs.files import MAX_NAME_BYTES
from ..outputs.record import MAX_RECORD_BYTES, RECORD_CHECKSUM, record_sha256
from ..readers.limits import read_bounded_json_object

CASE_SUFFIX = "_robustness"
CASE_FORMAT = "den-robustness-case/1"
POOLED_LENGTH = 2 * FEATURE_COUNT


@dataclass
class CaseRobustness:
    """One case's verified outputs: ``pooled`` (perturbed inputs, 8192) float32 and the record."""

    case_id: str
    pooled: np.ndarray
    record: dict

    @property
    def tumour_volume_mm3(self) -> float:
        """The unperturbed segmentation's tumour volume (the plan's first member is the original)."""
        return float(self.record["perturbations"][0]["tumour_volume_mm3"])

    @property
    def tumour_slices(self) -> int:
        """The unperturbed segmentation's number of slices holding tumour."""
        return int(self.record["perturbations"][0]["tumour_slices"])


def case_paths(out_dir: str | Path, case_id: str) -> dict[str, Path]:
    """The ``npy`` and ``json`` outputs of a case, refusing names too long for the file system or taken by a
    folder."""
    paths = {kind: Path(out_dir) / f"{case_id}{CASE_SUFFIX}.{kind}" for kind in ("npy", "json")}
    for path in paths.values():
        if len(path.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise DENError(case_id, f"the output name {path.name[:40]}... is longer than {MAX_NAME_BYTES} bytes: use a "
                                    "shorter case id")
        if path.is_dir():
            raise DENError(path, "an output of this case would replace this existing folder: move it or choose "
                                 "another output folder")
    return paths


def write_case(paths: dict[str, Path], pooled: np.ndarray, record: dict) -> None:
    """Write the pooled vectors, then the record naming their sha256 (with its own checksum), renamed into place
    together."""
    with ExitStack() as commits:
        temporary = {kind: commits.enter_context(atomic_path(paths[kind])) for kind in ("json", "npy")}
        np.save(temporary["npy"], pooled.astype(np.float32), allow_pickle=False)
        written = dict(record, outputs={"npy": {"file": paths["npy"].name, "sha256": file_sha256(temporary["npy"])}})
        written[RECORD_CHECKSUM] = record_sha256(written)
        temporary["json"].write_text(json.dumps(written, indent=2), encoding="utf-8")


def read_case(paths: dict[str, Path], case_id: str) -> CaseRobustness:
    """A case's outputs, verified (the record's checksum, the ``.npy``'s sha256, its shape against the plan);
    raises :class:`DENError` naming the file at fault."""
    record = read_bounded_json_object(paths["json"], MAX_RECORD_BYTES, "robustness record")
    if record.get("format") != CASE_FORMAT or record.get(RECORD_CHECKSUM) != record_sha256(record):
        raise DENError(paths["json"], "not an intact robustness record (edited, damaged or of another format): rerun "
                                      "den-robustness for this case")
    try:
        if file_sha256(paths["npy"]) != record["outputs"]["npy"]["sha256"]:
            raise DENError(paths["npy"], "does not match the sha256 its record names: rerun den-robustness for this case")
        pooled = np.load(paths["npy"], allow_pickle=False)
    except OSError as error:
        raise DENError(paths["npy"], f"cannot be read ({error.strerror or type(error).__name__})") from None
    expected = (len(record["perturbations"]), POOLED_LENGTH)
    if pooled.dtype != np.float32 or pooled.shape != expected:
        raise DENError(paths["npy"], f"holds {pooled.dtype} {pooled.shape}, the record says float32 {expected}")
    return CaseRobustness(case_id, pooled, record)
