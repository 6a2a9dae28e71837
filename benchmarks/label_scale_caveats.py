"""Measure the comparability caveats of the label scale and the field of view, on the real label maps.

Usage: ``python benchmarks/label_scale_caveats.py`` (reads ``../shared/data``; prints a Markdown table and lines)

1. Per real label map: its largest label, reference mode's divisor (the maximum of the bicubic-resized stack, as
   the published script divides), the network input of label 1 there, and oriented mode's divisor with
   the fixed scale (default 4) and with the former per-case scale.
2. On pat0001, with the bundled weights: the relative L2 change of the pooled vector when only the reference
   divisor changes (published divisor vs the largest label), when the field of view is cropped to the tumour's
   bounding box plus 10 voxels (reference and oriented mode), against the distance between two patients.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "DENExtractor"))
DATA = REPO.parent / "shared" / "data"

MAPS = {
    "brats2015/pat0001": DATA / "brats2015" / "pat0001" / "OTMultiClass.nii.gz",
    "brats2015/pat0002": DATA / "brats2015" / "pat0002" / "OTMultiClass.nii.gz",
    "captk_AAAC0 (binary)": DATA / "captk_AAAC0" / "AAAC0_flair_pp_shrunk_testTumor.nii.gz",
    "slicerio (labels 1-7)": DATA / "slicerio" / "Segmentation.seg.nrrd",
}


def main() -> None:
    """Print the divisor table and the pooled-vector distances."""
    from DENExtractorLib import load_segmentation
    from DENExtractorLib.errors import DENError
    from DENExtractorLib.extraction.preprocessing import preprocess

    print("| label map | largest label | reference divisor | label 1 enters as (reference) | oriented divisor, "
          "fixed scale 4 | oriented divisor, per case (before) |")
    print("|---|---|---|---|---|---|")
    for name, path in MAPS.items():
        volume = load_segmentation(path)
        largest = float(volume.data.max())
        reference = preprocess(volume).divisor
        try:
            fixed = f"{preprocess(volume, mode='oriented').divisor:g}"
        except DENError as error:
            fixed = f"refused ({str(error).split(': ', 1)[1].split(':')[0]})"
        per_case = preprocess(volume, mode="oriented", label_scale="case").divisor
        print(f"| {name} | {largest:g} | {reference:g} | {1 / reference:.3f} | {fixed} | {per_case:g} |")
    _pooled_distances()


def _pooled_distances() -> None:
    """Relative L2 distances of pat0001's pooled vector under a divisor change and a field-of-view crop."""
    from DENExtractorLib import load_segmentation
    from DENExtractorLib.extraction.preprocessing import preprocess
    from DENExtractorLib.extraction.result import pooled_vector
    from DENExtractorLib.extraction.stack_features import run_network
    from DENExtractorLib.network.model import load_model
    from DENExtractorLib.volume import Volume

    model = load_model(None)

    def pooled(stack) -> np.ndarray:
        return pooled_vector(run_network(model, stack), stack.foreground_rows).astype(np.float64)

    def distance(first: np.ndarray, second: np.ndarray) -> float:
        return float(np.linalg.norm(first - second) / np.linalg.norm(second))

    first = load_segmentation(MAPS["brats2015/pat0001"])
    second = load_segmentation(MAPS["brats2015/pat0002"])
    published = preprocess(first)
    rescaled = preprocess(first)
    rescaled.divisor = float(first.data.max())
    box = [np.flatnonzero(np.any(first.data != 0, axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    crop = tuple(slice(max(0, int(found[0]) - 10), int(found[-1]) + 11) for found in box)
    offset = np.eye(4)
    offset[:3, 3] = [part.start for part in crop]
    cropped = Volume(np.ascontiguousarray(first.data[crop]), first.affine @ offset, "pat0001-cropped", None)
    base = pooled(published)
    print(f"\npat0001 reference divisor {published.divisor:g} -> {rescaled.divisor:g} (largest label): "
          f"pooled vector relative L2 {distance(pooled(rescaled), base):.3f}")
    print(f"pat0001 cropped to the tumour box + 10 voxels {cropped.data.shape}, reference mode: relative L2 "
          f"{distance(pooled(preprocess(cropped)), base):.3f}")
    oriented = pooled(preprocess(first, mode="oriented"))
    print(f"pat0001 cropped, oriented mode: relative L2 "
          f"{distance(pooled(preprocess(cropped, mode='oriented')), oriented):.3f}")
    print(f"pat0001 vs pat0002, reference mode: relative L2 {distance(pooled(preprocess(second)), base):.3f}")


if __name__ == "__main__":
    main()
