"""The two pictures of ``den-robustness``: the ICC of every feature (distribution, and ranked with its intervals),
and each feature's correlation with the tumour volume and slice count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..outputs.atomic import write_atomically
from .confound import STRONG_CORRELATION, Confound
from .reliability import Reliability

ICC_BANDS = ((0.9, "excellent", "tab:green"), (0.75, "good", "tab:olive"), (0.5, "moderate", "tab:orange"))
"""Koo and Li's (J Chiropr Med 2016) bands, drawn as lines: ICC >= 0.9 excellent, >= 0.75 good, >= 0.5 moderate."""


def _figure(size: tuple[float, float]) -> Any:
    """A matplotlib figure drawn off screen (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def save_icc_png(path: Path, reliability: Reliability, title: str) -> Path:
    """Left: the histogram of the features' ICC; right: the features ranked by ICC, with the interval as a band."""
    figure = _figure((12, 4.5))
    histogram, ranked = figure.subplots(1, 2)
    defined = ~np.isnan(reliability.icc)
    values = reliability.icc[defined]
    low_end = min(-0.1, float(np.floor(values.min() * 10) / 10)) if values.size else -0.1
    histogram.hist(values, bins=np.linspace(low_end, 1.0, 45), color="tab:blue")
    order = np.argsort(-values, kind="stable")
    rank = np.arange(1, values.size + 1)
    ranked.fill_between(rank, reliability.low[defined][order], reliability.high[defined][order], color="tab:blue",
                        alpha=0.25, linewidth=0, label=f"{reliability.confidence:.0%} interval")
    ranked.plot(rank, values[order], color="tab:blue", linewidth=1.5, label=reliability.label)
    for threshold, name, colour in ICC_BANDS:
        count = int(np.count_nonzero(values >= threshold))
        histogram.axvline(threshold, color=colour, linestyle="--", linewidth=1, label=f"≥ {threshold:g} ({name}): {count}")
        ranked.axhline(threshold, color=colour, linestyle="--", linewidth=1)
    histogram.set_xlabel(reliability.label)
    histogram.set_ylabel("features")
    histogram.set_title(f"{values.size} features with an ICC ({reliability.icc.size - values.size} constant)", fontsize=10)
    histogram.legend(fontsize=8, loc="upper left")
    ranked.set_xlabel("features ranked by ICC")
    ranked.set_ylabel(reliability.label)
    ranked.set_ylim(max(-1.0, low_end - 0.05), 1.02)
    ranked.set_title(f"{reliability.subjects} cases x {reliability.raters} inputs (the original and "
                     f"{reliability.raters - 1} perturbations)", fontsize=10)
    ranked.legend(fontsize=8, loc="lower left")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))


def save_confound_png(path: Path, confound: Confound, title: str) -> Path:
    """Pearson's r of every feature with the tumour volume against its r with the slice count (scatter), and the
    distribution of r with the volume (histogram), the ``|r| >= 0.9`` bands marked."""
    figure = _figure((12, 4.5))
    scatter, histogram = figure.subplots(1, 2)
    both = ~np.isnan(confound.volume_r) & ~np.isnan(confound.slices_r)
    scatter.scatter(confound.volume_r[both], confound.slices_r[both], s=3, alpha=0.3, color="tab:purple",
                    linewidths=0)
    for axes_line in (scatter.axvline, scatter.axhline):
        for edge in (-STRONG_CORRELATION, STRONG_CORRELATION):
            axes_line(edge, color="tab:red", linestyle="--", linewidth=1)
    scatter.set_xlim(-1.02, 1.02)
    scatter.set_ylim(-1.02, 1.02)
    scatter.set_xlabel("Pearson r with the tumour volume")
    scatter.set_ylabel("Pearson r with the number of tumour slices")
    scatter.set_title(f"{int(both.sum())} features, {confound.cases} cases (dashed: |r| = {STRONG_CORRELATION:g})",
                      fontsize=10)
    volume_r = confound.volume_r[~np.isnan(confound.volume_r)]
    histogram.hist(volume_r, bins=np.linspace(-1, 1, 41), color="tab:purple")
    for edge in (-STRONG_CORRELATION, STRONG_CORRELATION):
        histogram.axvline(edge, color="tab:red", linestyle="--", linewidth=1)
    histogram.set_xlabel("Pearson r with the tumour volume")
    histogram.set_ylabel("features")
    histogram.set_title(f"|r| ≥ {STRONG_CORRELATION:g}: {confound.strong_share('volume'):.1%} of the features "
                        f"(slices: {confound.strong_share('slices'):.1%})", fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))
