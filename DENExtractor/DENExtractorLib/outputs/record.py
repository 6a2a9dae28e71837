"""The case record, ``{stem}_den.json``: the one place that writes it, reads it back and says what it holds.

A record is the provenance of one feature matrix plus the files it belongs to (``outputs``: each file's name and
sha256) and the checksum of the rest of the record (``record_sha256``). Every reader (``--resume``, the overwrite
guard, ``--merge``, the per-slice table, the heatmap's title and row label, ``den-score`` and the Slicer module)
goes through :class:`CaseRecord`, so each of them sees the same facts by the same rules, and "made with the same
settings?" is one comparison: ``record.settings == settings.effective``.

Each setting is stored once, in the record's ``settings`` entry (``den-provenance/2``). Records of earlier versions
(``den-provenance/1``) also kept mode, plane, labels and label scale in ``preprocessing``, and the oldest of them had
no ``settings`` entry; they are still read, their oriented-mode label scale being ``"case"`` when it is not recorded
(the only scale of that time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError
from ..readers.limits import read_bounded_json_object
from ..settings import CASE_LABEL_MAX, MODES, RECORDED_SETTINGS, EffectiveSettings

RECORD_CHECKSUM = "record_sha256"
"""The record's field holding the checksum of the rest of the record."""

MAX_RECORD_BYTES = 64 * 1024 * 1024
"""A record lists one number per foreground slice: megabytes at most; anything larger is not one."""


@dataclass(frozen=True)
class CaseRecord:
    """One case's record as read: the facts every reader uses, and the whole record (``provenance``).

    ``settings``: the effective settings the features were computed with; ``segmentation`` and ``image``: the
    input files' recorded sources and sha256 (``image`` None without an MRI); ``grid_sha256``: that of the DICOM
    series a DICOM SEG or RTSTRUCT was placed on (None: none); ``segments``: the input's named segments, where it has
    them; ``outputs``: per kind (``npy``, ``png``) the file name and sha256 the record names; ``intact``: whether
    the record's checksum matches it (False for a record edited by hand or written before records had one).
    """

    provenance: Mapping[str, Any]
    settings: EffectiveSettings
    model_id: str
    segmentation: tuple[str, str]
    image: tuple[str, str] | None
    grid_sha256: str | None
    segments: list | None
    feature_shape: tuple[int, ...]
    foreground_rows: np.ndarray
    outputs: Mapping[str, Mapping[str, str]]
    intact: bool

    @property
    def preprocessing(self) -> Mapping[str, Any]:
        """What preprocessing recorded besides the settings (slice axis, divisor, resize...)."""
        return self.provenance.get("preprocessing") or {}


def case_record(provenance: Mapping[str, Any], source: str | Path = "provenance") -> CaseRecord:
    """The :class:`CaseRecord` of provenance data (read from a file, or a result's, not yet written); raise
    :class:`DENError` naming ``source`` when a fact is missing or of the wrong type."""
    try:
        settings = _recorded_settings(provenance)
        image = provenance.get("image")
        return CaseRecord(
            provenance=provenance,
            settings=settings,
            model_id=str(provenance["model"]["id"]),
            segmentation=(str(provenance["input"]["source"]), str(provenance["input"]["sha256"])),
            image=(str(image["source"]), str(image["sha256"])) if image else None,
            grid_sha256=(provenance["input"].get("grid") or {}).get("sha256"),
            segments=provenance["input"].get("segments"),
            feature_shape=tuple(int(size) for size in provenance["features"]["shape"]),
            foreground_rows=np.asarray(provenance["features"]["foreground_rows"], dtype=np.int64),
            outputs={kind: {"file": str(entry["file"]), "sha256": str(entry["sha256"])}
                     for kind, entry in (provenance.get("outputs") or {}).items()},
            intact=provenance.get(RECORD_CHECKSUM) == record_sha256(provenance),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise DENError(source, f"not a complete DEN record (its {error} entry is missing or damaged)") from None


def read_record(path: str | Path) -> CaseRecord:
    """Read a ``_den.json`` (bounded; never a FIFO or device); raise :class:`DENError` naming it when it cannot be
    read or is not a complete record."""
    path = Path(path)
    return case_record(read_bounded_json_object(path, MAX_RECORD_BYTES, "DEN record"), path)


def write_record(path: Path, provenance: Mapping[str, Any], outputs: Mapping[str, Mapping[str, str]]) -> None:
    """Write the record of ``provenance`` naming ``outputs`` (per kind: file name and sha256), with its checksum."""
    record = dict(provenance, outputs=dict(outputs))
    record[RECORD_CHECKSUM] = record_sha256(record)
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")


def record_sha256(provenance: Mapping[str, Any]) -> str:
    """The sha256 of a record without its own checksum field (keys sorted, compact JSON): a ``.json`` edited by
    hand no longer matches it, so ``--resume`` and ``--merge`` do not trust it."""
    body = {key: value for key, value in provenance.items() if key != RECORD_CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _recorded_settings(provenance: Mapping[str, Any]) -> EffectiveSettings:
    """The effective settings a record describes: its ``settings`` entry, else (earlier records) ``preprocessing``."""
    recorded = provenance.get("settings") or {}
    preprocessing = provenance.get("preprocessing") or {}
    values = {name: recorded[name] if name in recorded else preprocessing.get(name) for name in RECORDED_SETTINGS}
    mode = values["mode"]
    if mode not in MODES:
        raise KeyError("settings.mode")
    oriented = mode == "oriented"
    if oriented and not isinstance(values["plane"], str):
        raise KeyError("settings.plane")
    labels = values["labels"]
    label_max = values["label_max"] if values["label_max"] is not None else CASE_LABEL_MAX
    return EffectiveSettings(
        mode=mode,
        plane=values["plane"] if oriented else None,
        labels=None if labels in ("all", None) else tuple(int(label) for label in labels),
        label_max=(label_max if label_max == CASE_LABEL_MAX else float(label_max)) if oriented else None,
        weights_sha256=str(provenance["model"]["weights_sha256"]),
    )
