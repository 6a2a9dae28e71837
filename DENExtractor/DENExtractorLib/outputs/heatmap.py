"""The features heatmap picture (slices x features, viridis) saved beside the feature matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEATMAP_COLORMAP = "viridis"


def save_heatmap_png(features: np.ndarray, path: Path, title: str, row_label: str = "slice") -> None:
    """Draw ``features`` (rows = slices, columns = features) as a viridis heatmap with labelled axes and colour bar."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), dpi=100)
    axes = figure.add_subplot()
    picture = axes.imshow(features, aspect="auto", cmap=HEATMAP_COLORMAP, interpolation="nearest")
    axes.set_xlabel(f"feature index (0-{features.shape[1] - 1})")
    axes.set_ylabel(f"{row_label}\nrows 0-{features.shape[0] - 1}", fontsize=9)
    axes.set_title(title, fontsize=9)
    figure.colorbar(picture, ax=axes, label="activation")
    figure.tight_layout()
    figure.savefig(path, format="png")
