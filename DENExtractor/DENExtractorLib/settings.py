"""The choices that shape the numbers, validated once: mode, plane, labels kept and weights.

One :class:`ExtractionSettings` is shared by the Python API, the command line, every cohort runner and the Slicer
module, so a choice is refused with the same sentence everywhere, before any file is read or TensorFlow loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import DENError
from .network.weights_files import WeightsIdentity, check_weights_file, weights_identity

MODES = ("reference", "oriented")
"""Preprocessing modes: the published pipeline bit for bit, or reoriented to RAS along an anatomical plane."""

PLANES = ("axial", "coronal", "sagittal")
"""Slicing planes of oriented mode."""

DEFAULT_PLANE = PLANES[0]


@dataclass(frozen=True)
class ExtractionSettings:
    """Validated extraction settings (frozen and picklable, so worker processes can receive them).

    ``mode``: "reference" (default) or "oriented"; ``plane``: oriented mode only, default axial (giving a plane in
    reference mode is refused, since reference mode slices along the first stored axis); ``labels``: label values
    to keep, None for all; ``weights``: a Keras ``.weights.h5`` or ``.keras`` file, None for the bundled weights.
    ``origin``: where each setting came from (``("mode", "den.yaml")``...), for the provenance only: two settings
    that differ only in origin are equal.
    """

    mode: str = "reference"
    plane: str | None = None
    labels: tuple[int, ...] | None = None
    weights: Path | None = None
    origin: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DENError("mode", f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.plane is not None and self.mode == "reference":
            raise DENError("plane", "a plane applies to oriented mode; reference mode slices along the first stored axis")
        if self.plane is not None and self.plane not in PLANES:
            raise DENError("plane", f"unknown plane {self.plane!r}: choose one of {', '.join(PLANES)}")
        object.__setattr__(self, "labels", _label_tuple(self.labels))
        if self.weights is not None:
            weights = Path(self.weights).expanduser().absolute()
            check_weights_file(weights)
            object.__setattr__(self, "weights", weights)

    @property
    def effective_plane(self) -> str:
        """The plane oriented mode slices along (axial unless chosen)."""
        return self.plane or DEFAULT_PLANE

    def with_labels(self, labels: Iterable[int] | None) -> ExtractionSettings:
        """These settings keeping ``labels`` instead (a cases CSV row's ``Label``; None: these settings unchanged),
        checked the same way."""
        if labels is None:
            return self
        origin = (*((name, source) for name, source in self.origin if name != "labels"), ("labels", "cases CSV Label"))
        return replace(self, labels=tuple(labels), origin=origin)

    def record(self) -> dict:
        """The effective settings as the provenance records them (JSON data), with where each came from: the
        recorded origin, else "default" for a default value and "given" for one the caller chose."""
        sources = dict(self.origin)
        defaults = ExtractionSettings()
        return {
            "mode": self.mode,
            "plane": self.effective_plane if self.mode == "oriented" else None,
            "labels": "all" if self.labels is None else list(self.labels),
            "weights": "bundled" if self.weights is None else str(self.weights),
            "from": {name: sources.get(name) or ("default" if getattr(self, name) == getattr(defaults, name)
                                                 else "given") for name in ("mode", "plane", "labels", "weights")},
        }

    def weights_identity(self) -> WeightsIdentity:
        """Model id, sha256 and source of the weights these settings use, computed without building a network."""
        return weights_identity(self.weights)


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
