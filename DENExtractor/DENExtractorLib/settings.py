"""The choices that shape the numbers, validated once: mode, plane, labels kept and weights.

One :class:`ExtractionSettings` is shared by the Python API, the command line, every cohort runner and the Slicer
module, so a choice is refused with the same sentence everywhere, before any file is read or TensorFlow loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path

from .errors import DENError
from .network.weights_files import WeightsIdentity, check_weights_file, weights_identity

MODES = ("reference", "oriented")
"""Preprocessing modes: the published pipeline bit for bit, or reoriented to RAS along an anatomical plane."""

PLANES = ("axial", "coronal", "sagittal")
"""Slicing planes of oriented mode."""

DEFAULT_PLANE = PLANES[0]

DEFAULT_LABEL_MAX = 4.0
"""Oriented mode's label scale: a label value v enters the network as v / 4 in every case. 4 is the largest label
of every BraTS scheme (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing; 2021's 1, 2, 4; 2023's 1, 2, 3), so
BraTS label maps need no option and a full BraTS case gets the numbers the per-case scale gave it."""

CASE_LABEL_MAX = "case"
"""``label_max="case"``: divide by each case's own largest label (oriented mode before the fixed scale)."""

SETTING_NAMES = ("mode", "plane", "labels", "weights", "label_max")
"""The settings a user chooses (options, settings-file keys, the provenance's ``settings.from``)."""


RECORDED_SETTINGS = ("mode", "plane", "labels", "label_max")
"""The settings (besides the weights, recorded by their sha256 under ``model``) that a record keeps in
``settings``; records before ``den-provenance/2`` repeated them in ``preprocessing``."""


@dataclass(frozen=True)
class EffectiveSettings:
    """Every setting that moves a feature number, as two runs compare them: ``plane`` and ``label_max`` (oriented
    mode's, defaults filled in) are None in reference mode, ``labels`` None for all, and the weights are their
    sha256 (the same file under another path is the same setting; other bytes under the same path are not)."""

    mode: str
    plane: str | None
    labels: tuple[int, ...] | None
    label_max: float | str | None
    weights_sha256: str

    def describe(self) -> str:
        """The settings in words for a message: ``mode oriented, plane axial, labels 1,4, label max 8``."""
        labels = "all" if self.labels is None else ",".join(str(label) for label in self.labels)
        words = [f"mode {self.mode}"] + ([f"plane {self.plane}"] if self.plane else []) + [f"labels {labels}"]
        if self.label_max is not None:
            words.append(f"label max {self.label_max:g}" if isinstance(self.label_max, float)
                         else f"label max {self.label_max}")
        return ", ".join(words) + f", weights {self.weights_sha256[:12]}"


@dataclass(frozen=True)
class ExtractionSettings:
    """Validated extraction settings (frozen and picklable, so worker processes can receive them).

    ``mode``: "reference" (default) or "oriented"; ``plane``: oriented mode only, default axial (giving a plane in
    reference mode is refused, since reference mode slices along the first stored axis); ``labels``: label values
    to keep, None for all; ``weights``: a Keras ``.weights.h5`` or ``.keras`` file, None for the bundled weights;
    ``label_max``: oriented mode only, the label value that enters the network as 1 (default
    :data:`DEFAULT_LABEL_MAX`; ``"case"`` for each case's own largest label, the former behaviour);
    ``origin``: where each setting came from (``("mode", "den.yaml")``...), for the provenance only: two settings
    that differ only in origin are equal.
    """

    mode: str = "reference"
    plane: str | None = None
    labels: tuple[int, ...] | None = None
    weights: Path | None = None
    label_max: float | str | None = None
    origin: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    known_identity: InitVar[WeightsIdentity | None] = None
    _identity: WeightsIdentity | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self, known_identity: WeightsIdentity | None) -> None:
        if self.mode not in MODES:
            raise DENError("mode", f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.plane is not None and self.mode == "reference":
            raise DENError("plane", "a plane applies to oriented mode; reference mode slices along the first stored axis")
        if self.plane is not None and self.plane not in PLANES:
            raise DENError("plane", f"unknown plane {self.plane!r}: choose one of {', '.join(PLANES)}")
        object.__setattr__(self, "labels", _label_tuple(self.labels))
        object.__setattr__(self, "label_max", _label_max(self.label_max, self.mode))
        if self.weights is not None:
            weights = Path(self.weights).expanduser().absolute()
            check_weights_file(weights)
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "_identity", known_identity)

    @property
    def effective_plane(self) -> str:
        """The plane oriented mode slices along (axial unless chosen)."""
        return self.plane or DEFAULT_PLANE

    @property
    def label_scale(self) -> float | str:
        """Oriented mode's label divisor: the fixed ``label_max`` (default 4), or ``"case"``."""
        return DEFAULT_LABEL_MAX if self.label_max is None else self.label_max

    def with_labels(self, labels: Iterable[int] | None) -> ExtractionSettings:
        """These settings keeping ``labels`` instead (a cases CSV row's ``Label``; None: these settings unchanged),
        checked the same way; the weights' identity is carried over, not worked out again."""
        if labels is None:
            return self
        origin = (*((name, source) for name, source in self.origin if name != "labels"), ("labels", "cases CSV Label"))
        return replace(self, labels=tuple(labels), origin=origin, known_identity=self._identity)

    @property
    def labels_record(self) -> str | list[int]:
        """The labels kept, as every record writes them: "all", or the sorted list of values."""
        return "all" if self.labels is None else list(self.labels)

    def record(self) -> dict:
        """The settings as JSON data, the one record that provenance, resume, array-job manifests and training
        write and compare: mode, plane and label scale (oriented mode's, else None), labels and weights path."""
        return {
            "mode": self.mode,
            "plane": self.effective_plane if self.mode == "oriented" else None,
            "labels": self.labels_record,
            "weights": str(self.weights) if self.weights is not None else None,
            "label_max": self.label_scale if self.mode == "oriented" else None,
        }

    @classmethod
    def from_record(cls, record: Mapping) -> ExtractionSettings:
        """The settings a :meth:`record` describes, checked again like any other input."""
        labels = record["labels"]
        return cls(record["mode"], record["plane"], None if labels in ("all", None) else labels, record["weights"],
                   record.get("label_max"))

    @property
    def identity(self) -> WeightsIdentity:
        """Model id, sha256 and source of these settings' weights, the file hashed once per settings object (and
        carried to settings made from it by :meth:`with_labels`), without building a network."""
        identity = self._identity
        if identity is None:
            identity = weights_identity(self.weights)
            object.__setattr__(self, "_identity", identity)  # frozen: set once, as __post_init__ sets its fields
        return identity

    @property
    def effective(self) -> EffectiveSettings:
        """Every setting that moves a number, defaults filled in and the weights named by their sha256: the one
        value two runs compare (:attr:`DENExtractorLib.outputs.record.CaseRecord.settings`)."""
        oriented = self.mode == "oriented"
        return EffectiveSettings(self.mode, self.effective_plane if oriented else None, self.labels,
                                 self.label_scale if oriented else None, self.identity.sha256)

    def provenance_record(self) -> dict:
        """The effective settings as the provenance records them: :meth:`record` with the weights named
        ("bundled" or the file) and where each setting came from (the recorded origin, else "default" for a default
        value and "given" for one the caller chose)."""
        sources = dict(self.origin)
        defaults = ExtractionSettings()
        return {
            **self.record(),
            "weights": "bundled" if self.weights is None else str(self.weights),
            "from": {name: sources.get(name) or ("default" if getattr(self, name) == getattr(defaults, name)
                                                 else "given") for name in SETTING_NAMES},
        }

    def weights_identity(self) -> WeightsIdentity:
        """Model id, sha256 and source of the weights these settings use (:attr:`identity`)."""
        return self.identity

    def __getstate__(self) -> dict:
        """Pickle the settings without their weights' identity: a worker process hashes the file it can see itself
        (once), so a worker given other bytes under the same path is caught."""
        return {**self.__dict__, "_identity": None}


def _label_tuple(labels: Iterable[int] | None) -> tuple[int, ...] | None:
    """Sorted distinct positive label values, or None for all labels."""
    if labels is None:
        return None
    try:
        values = sorted({int(label) for label in labels})
    except (TypeError, ValueError):
        raise DENError("labels", f"labels must be whole numbers, got {labels!r}") from None
    if not values or values[0] <= 0:
        raise DENError("labels", f"labels must be positive whole numbers (0 is background), got {list(labels)}")
    return tuple(values)


def _label_max(value: float | str | None, mode: str) -> float | str | None:
    """A positive label scale, ``"case"`` or None; refused in reference mode (it divides as the published code)."""
    if value is None:
        return None
    if mode == "reference":
        raise DENError("label_max", "a label scale applies to oriented mode; reference mode divides by the stack "
                                    "maximum as the published code does")
    if isinstance(value, str) and value.strip().lower() == CASE_LABEL_MAX:
        return CASE_LABEL_MAX
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise DENError("label_max", f"{value!r} is neither a positive number nor {CASE_LABEL_MAX!r}") from None
    if not scale > 0 or scale == float("inf"):
        raise DENError("label_max", f"{value!r} must be a positive number (the label value that enters as 1)")
    return scale
