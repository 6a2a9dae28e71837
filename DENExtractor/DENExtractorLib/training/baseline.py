"""The baseline every reviewer asks for: a linear probe on patients' pooled DEN features, fitted on the training
patients only.

Each case's pooled vector (mean then max over tumour slices, as extraction computes it) is reduced to the features
that vary over the training patients (interquartile range above :data:`MIN_SPREAD`), scaled robustly by the
training patients' median and interquartile range and clipped to +-:data:`CLIP` (8192 features on a few dozen
patients would otherwise let one outlying value dominate), then fed to a class-balanced L2 logistic regression
whose strength ``C`` is chosen by grouped, stratified inner cross-validation on the training patients (lowest
log loss). Validation and test patients are only scored. The probe runs on the base weights' features (never
trained on these labels) and, beside it, on the trained trunk's features.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DENError
from ..extraction.result import pooled_vector
from .cache import CachedCase

MAX_FOLDS = 5
C_GRID = tuple(float(value) for value in np.logspace(-4, 2, 7))
DEFAULT_C = 1.0
"""``C`` when the training patients are too few for two inner folds per class."""
MIN_SPREAD = 1e-8
CLIP = 5.0


def require_scikit_learn() -> None:
    """Raise a one-line :class:`DENError` if scikit-learn (the ``train`` extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise DENError("scikit-learn", "not installed; the logistic-regression baseline needs it: "
                                       "pip install -e '.[train]' from a DENExtractor checkout") from None


def pooled_features(cases: list[CachedCase], features_of: Callable[[CachedCase], np.ndarray]) -> np.ndarray:
    """(cases, 8192): every case's pooled vector from ``features_of(case)``, its (slices, 4096) features."""
    return np.stack([pooled_vector(features, np.arange(len(features))) for features in map(features_of, cases)])


@dataclass
class LinearProbe:
    """A fitted probe: the kept features, their median and spread, the logistic regression and how ``C`` was chosen."""

    kept: np.ndarray
    median: np.ndarray
    spread: np.ndarray
    model: Any
    class_count: int
    choice: dict

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(cases, classes) probabilities; a class absent from the training patients gets 0."""
        out = np.zeros((len(features), self.class_count))
        out[:, self.model.classes_] = self.model.predict_proba(self._scaled(features))
        return out

    def _scaled(self, features: np.ndarray) -> np.ndarray:
        """Kept features, robustly scaled by the training patients and clipped."""
        return np.clip((features[:, self.kept] - self.median) / self.spread, -CLIP, CLIP)

    def describe(self) -> dict:
        """JSON-ready summary: features kept, ``C`` chosen and its inner cross-validation, coefficients' sha256."""
        coefficients = np.concatenate([self.model.coef_.ravel(), self.model.intercept_]).astype(np.float64)
        digest = hashlib.sha256(coefficients.tobytes()).hexdigest()
        return {"features_kept": len(self.kept), **self.choice, "coefficients_sha256": digest}


def fit_probe(features: np.ndarray, labels: np.ndarray, groups: list[str], class_count: int, seed: int,
              allowed: np.ndarray | None = None) -> LinearProbe:
    """Fit the probe on these (training) cases, choosing ``C`` by grouped stratified inner cross-validation;
    ``allowed``: a mask of the features it may use (``den-train --min-icc``), None for all."""
    allowed = np.ones(features.shape[1], dtype=bool) if allowed is None else allowed
    low, high = np.percentile(features, [25, 75], axis=0)
    kept = np.flatnonzero((high - low > MIN_SPREAD) & allowed)
    if not len(kept):
        kept = np.flatnonzero(allowed)
    median = np.median(features[:, kept], axis=0)
    spread = np.maximum(high[kept] - low[kept], MIN_SPREAD)
    scaled = np.clip((features[:, kept] - median) / spread, -CLIP, CLIP)
    choice = dict(_choose_c(scaled, labels, groups, class_count, seed), features_in=int(features.shape[1]))
    model = _logistic(choice["C"], seed).fit(scaled, labels)
    return LinearProbe(kept, median, spread, model, class_count, choice)


def _choose_c(scaled: np.ndarray, labels: np.ndarray, groups: list[str], class_count: int, seed: int) -> dict:
    """The ``C`` of :data:`C_GRID` with the lowest mean inner-fold log loss (folds by group, stratified)."""
    from sklearn.model_selection import StratifiedGroupKFold

    group_label = dict(zip(groups, labels, strict=True))
    folds = int(min(MAX_FOLDS, np.bincount(list(group_label.values()), minlength=class_count).min()))
    if folds < 2:
        return {"C": DEFAULT_C, "chosen_by": "default (a class has fewer than 2 training patients: no inner folds)"}
    splits = list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(scaled, labels, groups))
    losses = []
    for strength in C_GRID:
        fold_losses = []
        for inner_train, inner_test in splits:
            model = _logistic(strength, seed).fit(scaled[inner_train], labels[inner_train])
            probabilities = np.full((len(inner_test), class_count), 1e-7)
            probabilities[:, model.classes_] = np.maximum(model.predict_proba(scaled[inner_test]), 1e-7)
            fold_losses.append(float(np.mean(-np.log(probabilities[np.arange(len(inner_test)), labels[inner_test]]))))
        losses.append(float(np.mean(fold_losses)))
    best = int(np.argmin(losses))
    return {"C": C_GRID[best], "chosen_by": f"grouped stratified {folds}-fold inner cross-validation on the "
                                             "training patients (lowest log loss)",
            "inner_log_loss": {f"{strength:g}": loss for strength, loss in zip(C_GRID, losses, strict=True)}}


def _logistic(strength: float, seed: int):
    """Class-balanced L2 logistic regression (lbfgs, deterministic)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=strength, class_weight="balanced", max_iter=5000, random_state=seed)
