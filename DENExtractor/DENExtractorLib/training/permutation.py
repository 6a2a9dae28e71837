"""Permutation p-values: exact over every arrangement, or Monte Carlo with as many draws as the decision needs.

Exact: p = (arrangements whose statistic reaches the observed one) / (all arrangements), the observed one included.
Monte Carlo: p = (b + 1) / (m + 1) for b of m random arrangements reaching it, drawn in chunks until the 99%
Clopper-Pearson interval of the exact p-value lies wholly on one side of alpha (or :data:`MONTE_CARLO_MOST` draws);
the interval is reported with p, and a claim needs all of it below alpha, so sampling noise cannot flip a verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

MONTE_CARLO_LEAST = 20_000
"""Random arrangements drawn at least (when they are too many to enumerate)."""

MONTE_CARLO_MOST = 500_000
"""Random arrangements drawn at most: past this, a p-value whose interval still straddles alpha is no claim."""

MONTE_CARLO_LEVEL = 0.99
"""Confidence of the interval of a Monte Carlo p-value."""

TIES = 1e-9
"""A statistic within this of the observed one counts as reaching it (sums of the same terms in other orders)."""


@dataclass(frozen=True)
class PermutationP:
    """A permutation p-value: ``exact`` over every arrangement, else Monte Carlo over ``draws`` with the
    :data:`MONTE_CARLO_LEVEL` interval of the exact p-value it estimates."""

    value: float
    exact: bool
    draws: int
    interval: tuple[float, float] | None

    def below(self, alpha: float) -> bool:
        """Whether p < alpha beyond doubt: exactly, or with all of the Monte Carlo interval below alpha."""
        return self.value < alpha and (self.interval is None or self.interval[1] < alpha)

    def record(self) -> dict:
        """JSON-ready: the p-value, how it was computed, and its Monte Carlo interval (None when exact)."""
        return {"p_value": self.value, "exact": self.exact, "arrangements": self.draws,
                "p_interval": list(self.interval) if self.interval is not None else None,
                "p_interval_level": None if self.exact else MONTE_CARLO_LEVEL}

    def text(self) -> str:
        """``0.0123 (exact)`` or ``0.0123 (Monte Carlo, 99% 0.0101-0.0148 over 20,000 shuffles)``."""
        if self.interval is None:
            return f"{self.value:.4f} (exact)"
        low, high = self.interval
        return f"{self.value:.4f} (Monte Carlo, {MONTE_CARLO_LEVEL:.0%} {low:.4f}-{high:.4f} over {self.draws:,} shuffles)"


def permutation_p(statistics: Iterator[np.ndarray], observed: float, exact: bool, alpha: float) -> PermutationP:
    """The p-value of ``observed`` against the statistic's values over the arrangements, chunk by chunk.

    ``exact``: ``statistics`` covers every arrangement once (the observed one included) and ends. Otherwise it is
    endless random arrangements, drawn until the decision at ``alpha`` is beyond Monte Carlo doubt.
    """
    reached = drawn = 0
    for values in statistics:
        reached += int(np.count_nonzero(values >= observed - TIES))
        drawn += len(values)
        if not exact and drawn >= MONTE_CARLO_LEAST:
            low, high = clopper_pearson(reached, drawn)
            if high < alpha or low > alpha or drawn >= MONTE_CARLO_MOST:
                return PermutationP((reached + 1) / (drawn + 1), False, drawn, (low, high))
    return PermutationP(reached / drawn, True, drawn, None)


def clopper_pearson(successes: int, trials: int, level: float = MONTE_CARLO_LEVEL) -> tuple[float, float]:
    """The exact binomial (Clopper-Pearson) interval of a proportion."""
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, successes, trials - successes + 1)) if successes else 0.0
    high = float(beta.ppf(1 - tail, successes + 1, trials - successes)) if successes < trials else 1.0
    return low, high
