"""The volume confound: how closely each pooled feature follows the tumour's size across cases.

A feature that correlates with the tumour volume (or with the number of slices holding tumour, which DEN's pooling
sees directly) at ``|r| >= 0.9`` restates the size: a model built on it can look predictive when size alone is
(the methodological flaw Gidwani et al. describe, Radiology 2023). Pearson's r over the cases, on the unperturbed
segmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DENError

STRONG_CORRELATION = 0.9
"""``|r|`` at or above which a feature counts as restating the covariate."""


@dataclass
class Confound:
    """Each feature's Pearson r with the tumour volume and with the number of tumour slices (NaN for a feature or
    covariate constant over the cases)."""

    volume_r: np.ndarray
    slices_r: np.ndarray
    cases: int

    def strong_share(self, which: str) -> float:
        """The share of features (of all of them) with ``|r| >= 0.9`` against ``which``: "volume" or "slices"."""
        r = self.volume_r if which == "volume" else self.slices_r
        return float(np.count_nonzero(np.abs(np.nan_to_num(r)) >= STRONG_CORRELATION) / r.size)


def volume_confound(features: np.ndarray, volume_mm3: np.ndarray, tumour_slices: np.ndarray) -> Confound:
    """The correlations of every column of ``features`` (cases, features) with the cases' volumes and slice counts.

    Raises :class:`DENError` for fewer than 3 cases (two points always lie on a line).
    """
    if len(features) < 3:
        raise DENError("volume confound", f"needs at least 3 cases, got {len(features)}")
    return Confound(pearson_r(features, volume_mm3), pearson_r(features, tumour_slices.astype(np.float64)),
                    len(features))


def pearson_r(features: np.ndarray, covariate: np.ndarray) -> np.ndarray:
    """Pearson's r of each column of ``features`` with ``covariate`` (NaN where either is constant)."""
    x = features.astype(np.float64) - features.mean(axis=0, dtype=np.float64)
    y = covariate.astype(np.float64) - covariate.mean()
    spread = np.sqrt((x**2).sum(axis=0) * (y**2).sum())
    r = np.full(features.shape[1], np.nan)
    defined = (np.ptp(features, axis=0) > 0) & (np.ptp(covariate) > 0)
    r[defined] = np.clip((y @ x[:, defined]) / spread[defined], -1.0, 1.0)
    return r
