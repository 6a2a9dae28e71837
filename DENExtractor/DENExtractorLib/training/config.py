"""The choices of one ``den-train`` run, validated once (a bad value is a one-line :class:`DENError`).

Preprocessing and base weights are an :class:`~DENExtractorLib.settings.ExtractionSettings`, the very type
extraction takes, so training sees its inputs exactly as ``den-extract`` with the same settings will.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DENError
from ..settings import ExtractionSettings

TRAIN_LAYERS = ("dense", "all")
"""``dense``: only the 4096-unit layer and the head learn (convolutions frozen, BatchNorm in inference mode);
``all``: every layer learns."""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that shapes the trained weights besides the data: extraction settings (mode, plane, labels kept,
    base weights) and the hyperparameters."""

    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    train_layers: str = "dense"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    patience: int = 5
    seed: int = 0
    model_id: str | None = None
    min_icc: float | None = None
    robustness: Path | None = None
    one_case_per_patient: bool = False
    """Without a ``group`` column, the user's statement that every case is a different patient: only then can the
    verdict call anything better than chance or the baseline (a patient's several cases would let it recognise the
    patient)."""

    def __post_init__(self) -> None:
        """Refuse values that cannot train, naming the option."""
        checks = [
            ("train_layers", self.train_layers in TRAIN_LAYERS, f"{self.train_layers!r} is not one of {', '.join(TRAIN_LAYERS)}"),
            ("val_fraction", 0 < self.val_fraction < 1, f"{self.val_fraction:g} must lie between 0 and 1"),
            ("test_fraction", 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1,
             f"{self.test_fraction:g} must lie in [0, 1) and leave training patients beside the validation fraction"),
            ("epochs", self.epochs >= 1, f"{self.epochs} must be at least 1"),
            ("batch_size", self.batch_size >= 1, f"{self.batch_size} must be at least 1"),
            ("learning_rate", self.learning_rate > 0, f"{self.learning_rate:g} must be positive"),
            ("patience", self.patience >= 1, f"{self.patience} must be at least 1"),
            ("seed", 0 <= self.seed < 2**32, f"{self.seed} must be a whole number from 0 to {2**32 - 1}"),
            ("min_icc", (self.min_icc is None) == (self.robustness is None),
             "--min-icc and --robustness go together: the ICC threshold and the den-robustness table it applies to"),
            ("min_icc", self.min_icc is None or -1 <= self.min_icc <= 1, f"{self.min_icc} must lie in [-1, 1]"),
        ]
        for name, passed, fault in checks:
            if not passed:
                raise DENError(name, fault)

    def hyperparameters(self) -> dict:
        """Every choice as JSON-ready values, for the training record."""
        settings = self.settings
        return {
            **settings.record(),
            "train_layers": self.train_layers,
            "label_max": settings.label_scale if settings.mode == "oriented" else None,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patience": self.patience,
            "seed": self.seed,
            "model_id": self.model_id,
            "min_icc": self.min_icc,
            "robustness": None if self.robustness is None else str(self.robustness),
            "one_case_per_patient": self.one_case_per_patient,
        }
