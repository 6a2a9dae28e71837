"""Reading plain NRRD volumes (``.nrrd``, ``.nhdr``) in (i, j, k) order with a voxel-to-RAS affine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DENError
from ..volume import check_dimensions
from .nrrd_payload import open_nrrd

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (data in i, j, k order, voxel-to-RAS affine, sha256 of header and data) of a plain NRRD volume."""
    with open_nrrd(path) as nrrd_file:
        sizes = tuple(int(n) for n in np.atleast_1d(nrrd_file.header.get("sizes", [])))
        check_dimensions(sizes, path)
        affine = nrrd_affine(nrrd_file.header, path, spatial_axes=range(len(sizes)))
        voxels = nrrd_file.read_voxels()
    return voxels, affine, nrrd_file.sha256


def nrrd_affine(header: dict, source: str | Path, spatial_axes) -> np.ndarray:
    """The voxel-to-RAS affine from a NRRD header's space, space directions (rows ``spatial_axes``) and origin.

    Exactly three axes must have a direction; ``none`` on one of them, or directions that are not 3-vectors, are
    refused with a plain sentence.
    """
    space = str(header.get("space", "")).lower()
    if space in ("left-posterior-superior", "lps"):
        to_ras = LPS_TO_RAS
    elif space in ("right-anterior-superior", "ras"):
        to_ras = np.eye(4)
    else:
        raise DENError(source, f"unsupported NRRD space {header.get('space')!r}: expected LPS or RAS")
    try:
        directions = np.asarray(header.get("space directions"), dtype=np.float64)
    except (TypeError, ValueError):
        raise DENError(source, "the NRRD 'space directions' are not vectors of numbers") from None
    dimension = len(np.atleast_1d(header.get("sizes", [])))
    if directions.ndim != 2 or directions.shape[1] != 3 or directions.shape[0] != dimension:
        raise DENError(source, f"the NRRD 'space directions' must be 3-vectors, one per axis ({dimension} axes); "
                               f"got shape {directions.shape}")
    axes = list(spatial_axes)
    spatial = directions[[axis for axis in axes if not np.isnan(directions[axis]).any()]]
    if spatial.shape != (3, 3):
        raise DENError(source, "the NRRD 'space directions' must give a direction (not 'none') for each of the "
                               "3 spatial axes")
    try:
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        raise DENError(source, "the NRRD 'space origin' is not a 3-vector") from None
    affine = np.eye(4)
    affine[:3, :3] = spatial.T
    affine[:3, 3] = origin
    return to_ras @ affine
