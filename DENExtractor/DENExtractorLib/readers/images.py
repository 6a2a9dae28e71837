"""Images already in memory: a nibabel image (``Nifti1Image``...) or a SimpleITK ``Image`` accepted wherever a
file path is, with the same checks as a file (the memory bound from the declared size first, then the volume
rules of :mod:`..volume`).

SimpleITK holds voxels in LPS physical space with (x, y, z) = (i, j, k) indexing; its direction, spacing and
origin are turned into the voxel-to-RAS affine a NIfTI file of the same image carries. SimpleITK is never
imported here: an object is recognised as one of its images only when the user's program has imported it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import DENError
from ..volume import check_dimensions
from .limits import exceeds_limit

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_image_object(value: Any) -> bool:
    """Whether ``value`` is a nibabel spatial image or a SimpleITK image (rather than a path)."""
    return _is_nibabel_image(value) or _is_simpleitk_image(value)


def read_image_object(value: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (data in i, j, k order, voxel-to-RAS affine, a name for messages) of a nibabel or SimpleITK image."""
    if _is_nibabel_image(value):
        return _read_nibabel(value)
    return _read_simpleitk(value)


def _is_nibabel_image(value: Any) -> bool:
    """A nibabel spatial image (NIfTI, MGH, ... in memory or proxied on disk)."""
    import nibabel

    return isinstance(value, nibabel.spatialimages.SpatialImage)


def _is_simpleitk_image(value: Any) -> bool:
    """A SimpleITK image, if the program uses SimpleITK at all."""
    simpleitk = sys.modules.get("SimpleITK")
    return simpleitk is not None and isinstance(value, simpleitk.Image)


def _read_nibabel(image: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """A nibabel image's voxels (checked against the memory bound by its header first) and affine."""
    name = image.get_filename() or f"nibabel {type(image).__name__}"
    shape = tuple(int(n) for n in image.shape)
    check_dimensions(shape, name)
    slope, intercept = image.header.get_slope_inter() if hasattr(image.header, "get_slope_inter") else (None, None)
    scaled = slope not in (None, 1.0) or intercept not in (None, 0.0)
    itemsize = 8 if scaled else np.dtype(image.get_data_dtype()).itemsize
    problem = exceeds_limit(int(np.prod(shape, dtype=np.int64)) * itemsize)
    if problem:
        raise DENError(name, problem)
    return np.asanyarray(image.dataobj), np.asarray(image.affine, dtype=np.float64), name


def _read_simpleitk(image: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """A SimpleITK image's voxels as (i, j, k) and its LPS geometry as a voxel-to-RAS affine."""
    simpleitk = sys.modules["SimpleITK"]
    name = f"SimpleITK image {image.GetPixelIDTypeAsString()}"
    size = tuple(int(n) for n in image.GetSize())
    check_dimensions(size, name)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DENError(name, f"{image.GetNumberOfComponentsPerPixel()} components per voxel: DEN needs a scalar "
                             "image (one value per voxel)")
    problem = exceeds_limit(int(np.prod(size, dtype=np.int64)) * int(image.GetSizeOfPixelComponent()))
    if problem:
        raise DENError(name, problem)
    data = simpleitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (z, y, x) -> (i, j, k)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    to_lps = np.eye(4)
    to_lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    to_lps[:3, 3] = image.GetOrigin()
    return data, LPS_TO_RAS @ to_lps, name
