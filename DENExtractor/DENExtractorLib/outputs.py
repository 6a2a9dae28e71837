"""Writing a result: ``{stem}_den.npy`` (features), ``{stem}_den.json`` (provenance), ``{stem}_den.png`` (heatmap).

Every file is written atomically, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .extraction import ExtractionResult
from .heatmap import save_heatmap_png

OUTPUT_SUFFIX = "_den"


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """The paths of the ``npy``, ``json`` and ``png`` outputs of ``stem`` in ``out_dir``."""
    base = Path(out_dir) / f"{stem}{OUTPUT_SUFFIX}"
    return {kind: base.with_name(f"{base.name}.{kind}") for kind in ("npy", "json", "png")}


def write_outputs(result: ExtractionResult, out_dir: str | Path, stem: str, *, png: bool = True) -> dict[str, Path]:
    """Write the feature matrix, its provenance and (unless ``png=False``) the heatmap; return their paths.

    The ``.npy`` and ``.png`` are written before the ``.json``, so a provenance file only exists beside complete
    outputs.
    """
    paths = output_paths(out_dir, stem)
    written = {"npy": write_atomically(paths["npy"], lambda path: np.save(path, result.features, allow_pickle=False))}
    if png:
        title = f"DEN features of {stem} ({result.provenance['model']['id']})"
        written["png"] = write_atomically(paths["png"], lambda path: save_heatmap_png(result.features, path, title))
    provenance = dict(result.provenance, outputs={kind: path.name for kind, path in written.items()})
    text = json.dumps(provenance, indent=2)
    written["json"] = write_atomically(paths["json"], lambda path: path.write_text(text, encoding="utf-8"))
    return written
