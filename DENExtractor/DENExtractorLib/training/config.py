"""The choices of one ``den-train`` run, validated once (a bad value is a one-line :class:`DENError`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import DENError
from ..preprocessing import MODES, PLANES

TRAIN_LAYERS = ("dense", "all")
"""``dense``: only the 4096-unit layer and the head learn (convolutions frozen, BatchNorm in inference mode);
``all``: every layer learns."""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that shapes the trained weights besides the data: preprocessing, base weights, hyperparameters."""

    mode: str = "reference"
    plane: str = "axial"
    labels: tuple[int, ...] | None = None
    weights: Path | None = None
    train_layers: str = "dense"
    val_fraction: float = 0.25
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    patience: int = 5
    seed: int = 0
    model_id: str | None = None

    def __post_init__(self) -> None:
        """Refuse values that cannot train, naming the option."""
        checks = [
            (self.mode in MODES, f"mode {self.mode!r} is not one of {', '.join(MODES)}"),
            (self.plane in PLANES, f"plane {self.plane!r} is not one of {', '.join(PLANES)}"),
            (self.train_layers in TRAIN_LAYERS, f"train layers {self.train_layers!r} is not one of {', '.join(TRAIN_LAYERS)}"),
            (0 < self.val_fraction < 1, f"validation fraction {self.val_fraction:g} must lie between 0 and 1"),
            (self.epochs >= 1, f"epochs {self.epochs} must be at least 1"),
            (self.batch_size >= 1, f"batch size {self.batch_size} must be at least 1"),
            (self.learning_rate > 0, f"learning rate {self.learning_rate:g} must be positive"),
            (self.patience >= 1, f"patience {self.patience} must be at least 1"),
            (self.seed >= 0, f"seed {self.seed} must be a non-negative whole number"),
        ]
        for passed, fault in checks:
            if not passed:
                raise DENError("den-train", fault)

    def hyperparameters(self) -> dict:
        """Every choice as JSON-ready values, for the training record."""
        record = asdict(self)
        record["weights"] = str(self.weights) if self.weights is not None else None
        record["labels"] = "all" if self.labels is None else sorted(set(self.labels))
        if self.mode == "reference":
            record["plane"] = None
        return record
