"""A realistic synthetic glioblastoma label map, generated at run time, for the demo and the self-tests.

The tumour follows the BraTS labelling: 1 necrotic core, 4 enhancing rim, 3 non-enhancing tumour patches and
2 peritumoral oedema, each with an irregular, lobulated boundary, on a 1 mm grid with BraTS' LPS-style affine.
The same seed always gives the same voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .outputs.atomic import write_atomically

DEMO_SHAPE = (240, 240, 155)
DEMO_SEED = 7
NECROSIS, OEDEMA, NON_ENHANCING, ENHANCING = 1, 2, 3, 4


def synthetic_glioblastoma(shape: tuple[int, int, int] = DEMO_SHAPE, seed: int = DEMO_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Return (label map as uint8 in i, j, k order, voxel-to-RAS affine) of a synthetic glioblastoma."""
    generator = np.random.RandomState(seed)
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"), axis=-1)
    centre = np.asarray(shape, dtype=np.float32) * generator.uniform(0.4, 0.6, size=3).astype(np.float32)
    offset = grid - centre
    distance = np.linalg.norm(offset, axis=-1) + 1e-6
    direction = offset / distance[..., None]
    tumour_radius = 0.13 * min(shape) * _lobulation(direction, generator, strength=0.3)
    oedema_radius = 0.24 * min(shape) * _lobulation(direction, generator, strength=0.4)
    relative = distance / tumour_radius
    labels = np.zeros(shape, dtype=np.uint8)
    labels[distance < oedema_radius] = OEDEMA
    labels[relative < 1.0] = ENHANCING
    patches = _lobulation(direction, generator, strength=1.0) > 1.25
    labels[(relative < 0.85) & patches] = NON_ENHANCING
    labels[relative < 0.55] = NECROSIS
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = shape[1] - 1
    return labels, affine


def write_synthetic_case(path: str | Path, shape: tuple[int, int, int] = DEMO_SHAPE, seed: int = DEMO_SEED) -> Path:
    """Write the synthetic label map to a NIfTI file (atomically) and return its path."""
    import nibabel

    labels, affine = synthetic_glioblastoma(shape, seed)
    image = nibabel.Nifti1Image(labels, affine)
    image.header.set_xyzt_units("mm")
    return write_atomically(path, lambda temporary: nibabel.save(image, str(temporary)))


def _lobulation(direction: np.ndarray, generator: np.random.RandomState, strength: float) -> np.ndarray:
    """A smooth random factor around 1 that varies with direction, giving a lobulated boundary."""
    factor = np.ones(direction.shape[:-1], dtype=np.float32)
    for frequency in (1.0, 2.0, 3.0):
        axis = generator.normal(size=3).astype(np.float32)
        axis /= np.linalg.norm(axis)
        phase = generator.uniform(0, 2 * np.pi)
        factor += (strength / frequency) * np.cos(frequency * np.pi * (direction @ axis) + phase).astype(np.float32)
    return np.clip(factor, 0.4, None)
