"""Per-feature reliability across patients and perturbations: the intraclass correlation coefficient (ICC), with
its confidence interval, for every feature at once.

The cases are the subjects, the perturbed inputs the raters (the same plan for every case). The forms are Shrout
and Fleiss's (Psychol Bull 1979), with McGraw and Wong's confidence intervals (Psychol Methods 1996), from the
mean squares of a two-way analysis of variance without replication:

- ``1,1`` (default): one-way random effects, absolute agreement, single input: ``(MSB - MSW) / (MSB + (k-1) MSW)``,
  the form Zwanenburg et al. (Sci Rep 2019) report for perturbation robustness;
- ``2,1``: two-way random effects, absolute agreement (McGraw and Wong's ICC(A,1)): a perturbation's systematic
  shift counts as disagreement;
- ``3,1``: two-way mixed effects, consistency (ICC(C,1)): a systematic shift shared by all cases does not count.

Features constant over every case and perturbation have no ICC (NaN); features that no perturbation changes have
ICC 1 with the interval [1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DENError

ICC_FORMS = {
    "1,1": "ICC(1,1): one-way random effects, absolute agreement, single perturbed input",
    "2,1": "ICC(2,1): two-way random effects, absolute agreement, single perturbed input",
    "3,1": "ICC(3,1): two-way mixed effects, consistency, single perturbed input",
}
DEFAULT_FORM = "1,1"
FEATURES_PER_CHUNK = 1024
"""Features per block of the computation: bounds its temporaries to about 10 float64 copies of a block."""


@dataclass
class Reliability:
    """The ICC of every feature in one form, with its two-sided confidence interval (``low``, ``high``)."""

    form: str
    icc: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    subjects: int
    raters: int

    @property
    def label(self) -> str:
        """The form's name, e.g. ``ICC(1,1)``."""
        return f"ICC({self.form})"

    def at_least(self, threshold: float) -> np.ndarray:
        """Which features have an ICC of at least ``threshold`` (features without an ICC never do)."""
        return np.nan_to_num(self.icc, nan=-np.inf) >= threshold


def intraclass_correlation(values: np.ndarray, form: str = DEFAULT_FORM, confidence: float = 0.95) -> Reliability:
    """The ICC of each feature of ``values``, shaped (subjects, raters, features): cases, perturbed inputs, features.

    Raises :class:`DENError` for an unknown form or fewer than 2 subjects or raters.
    """
    if form not in ICC_FORMS:
        raise DENError("icc form", f"{form!r}: choose one of {', '.join(ICC_FORMS)}")
    subjects, raters, features = values.shape
    if subjects < 2 or raters < 2:
        raise DENError("icc", f"needs at least 2 cases and 2 perturbed inputs each, got {subjects} and {raters}")
    icc, low, high = (np.full(features, np.nan) for _ in range(3))
    for start in range(0, features, FEATURES_PER_CHUNK):
        block = slice(start, start + FEATURES_PER_CHUNK)
        icc[block], low[block], high[block] = _icc_block(values[:, :, block].astype(np.float64), form, confidence)
    return Reliability(form, icc, low, high, confidence, subjects, raters)


def _mean_squares(x: np.ndarray) -> dict[str, np.ndarray]:
    """Between subjects (``b``), within subjects (``w``), between raters (``j``) and residual (``e``) mean
    squares of each feature of ``x`` (subjects, raters, features), from the residuals themselves (no differences of
    large sums)."""
    n, k = x.shape[:2]
    grand = x.mean(axis=(0, 1))
    subject = x.mean(axis=1, keepdims=True)
    rater = x.mean(axis=0, keepdims=True)
    return {
        "b": k * ((subject[:, 0] - grand) ** 2).sum(axis=0) / (n - 1),
        "w": ((x - subject) ** 2).sum(axis=(0, 1)) / (n * (k - 1)),
        "j": n * ((rater[0] - grand) ** 2).sum(axis=0) / (k - 1),
        "e": ((x - subject - rater + grand) ** 2).sum(axis=(0, 1)) / ((n - 1) * (k - 1)),
    }


def _icc_block(x: np.ndarray, form: str, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICC, lower and upper bound of each feature of a block (NaN where the feature is constant)."""
    n, k, count = x.shape
    icc, low, high = (np.full(count, np.nan) for _ in range(3))
    varies = np.ptp(x.reshape(n * k, count), axis=0) > 0
    ms = _mean_squares(x[:, :, varies])
    error = ms["w"] if form == "1,1" else ms["e"]
    exact = error == 0  # no perturbation changes the feature: perfect agreement
    icc[varies], low[varies], high[varies] = (np.where(exact, 1.0, part) for part in _icc_with_interval(
        {name: np.where(exact, 1.0, value) for name, value in ms.items()}, n, k, form, confidence))
    return icc, low, high


def _icc_with_interval(ms: dict[str, np.ndarray], n: int, k: int, form: str, confidence: float,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICC and its interval from the mean squares (every residual mean square positive)."""
    from scipy.stats import f as f_distribution

    upper_quantile = 1 - (1 - confidence) / 2
    quantile = lambda first, second: f_distribution.ppf(upper_quantile, first, second)  # noqa: E731
    if form == "2,1":
        icc = (ms["b"] - ms["e"]) / (ms["b"] + (k - 1) * ms["e"] + k * (ms["j"] - ms["e"]) / n)
        rater_f = ms["j"] / ms["e"]
        spread = n * (1 + (k - 1) * icc) - k * icc
        degrees = ((n - 1) * (k - 1) * (k * icc * rater_f + spread) ** 2
                   / ((n - 1) * k**2 * icc**2 * rater_f**2 + spread**2))  # Satterthwaite
        f_high, f_low = quantile(n - 1, degrees), quantile(degrees, n - 1)
        shared = k * ms["j"] + (k * n - k - n) * ms["e"]
        low = n * (ms["b"] - f_high * ms["e"]) / (f_high * shared + n * ms["b"])
        high = n * (f_low * ms["b"] - ms["e"]) / (shared + n * f_low * ms["b"])
        return icc, low, high
    error, error_degrees = (ms["w"], n * (k - 1)) if form == "1,1" else (ms["e"], (n - 1) * (k - 1))
    ratio = ms["b"] / error
    icc = (ms["b"] - error) / (ms["b"] + (k - 1) * error)
    f_low = ratio / quantile(n - 1, error_degrees)
    f_high = ratio * quantile(error_degrees, n - 1)
    return icc, (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)
