"""Reading NIfTI files (``.nii``, ``.nii.gz``): one pass over the file, the header checked before any voxel is read.

The header is parsed by nibabel's own header classes (NIfTI-1 and NIfTI-2), so a header nibabel refuses is refused
here with nibabel's reason. The voxels are then read (or decompressed, zlib-ng where installed) from the same open
file, bounded by what the header declares, and scaled by ``scl_slope``/``scl_inter`` exactly as nibabel's
``np.asanyarray(image.dataobj)`` scales them (the values ``get_fdata()`` gives), for ``.nii`` and ``.nii.gz`` alike.
The sha256 returned is the digest of the very bytes read.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DENError, describe_error
from ..volume import check_dimensions
from .decompress import CorruptData, DecompressingInput
from .limits import exceeds_limit
from .stream import HashedInput

Content = HashedInput | DecompressingInput

MAX_EXTENSION_BYTES = 16 << 20
"""Most header-extension bytes read (before ``vox_offset``); real extensions (DICOM, AFNI) are far smaller."""


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (data in i, j, k order, voxel-to-RAS affine, sha256 of the file's bytes) of a NIfTI file."""
    try:
        return _read(path)
    except CorruptData as error:
        raise DENError(path, f"not a readable NIfTI file ({error.fault})") from None


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`read_nifti`'s one pass over the file."""
    with open(path, "rb") as handle:
        stream = HashedInput(handle)
        content: Content = DecompressingInput(stream, "gzip", path) if path.name.lower().endswith(".gz") else stream
        header = _parse_header(content, path)
        shape, stored_type, offset, slope, inter = _declared(header, path)
        count = int(np.prod(shape, dtype=np.int64))
        payload_bytes = count * stored_type.itemsize
        scaled = (slope, inter) != (1.0, 0.0)
        problem = exceeds_limit(payload_bytes + (8 * count if scaled else 0))
        if problem:
            raise DENError(path, problem)
        if offset < content.consumed:
            raise DENError(path, f"the header puts the voxels at byte {offset} (vox_offset), inside the header itself")
        payload = bytearray(payload_bytes)
        content.skip(offset - content.consumed)
        filled = content.read_into(memoryview(payload))
        if filled < payload_bytes:
            raise DENError(path, f"the voxel data cannot be read: truncated or corrupt file ({filled} of "
                                 f"{payload_bytes} voxel bytes)")
        stream.drain()
    raw = np.frombuffer(payload, dtype=stored_type, count=count).reshape(shape, order="F")
    return _scaled(raw, slope, inter), _affine(header, path), stream.sha256


def _affine(header, path: Path) -> np.ndarray:
    """The header's voxel-to-RAS affine (sform, else qform, as nibabel chooses), or one line saying why not."""
    try:
        with np.errstate(all="ignore"):
            return np.asarray(header.get_best_affine(), dtype=np.float64)
    except (ValueError, ArithmeticError) as error:
        raise DENError(path, f"the header's orientation (qform quaternion or sform) is invalid ({_plain(error, path)})"
                       ) from None


def _parse_header(stream: Content, path: Path):
    """nibabel's NIfTI-1 or NIfTI-2 header of the file, checked as nibabel.load checks it."""
    import nibabel

    first = stream.read(4)
    stream.unread(first)
    sizes = {int.from_bytes(first, "little"), int.from_bytes(first, "big")} if len(first) == 4 else set()
    header_class = nibabel.Nifti2Header if 540 in sizes else nibabel.Nifti1Header
    head = stream.read(header_class.template_dtype.itemsize + 4)
    try:
        with _nibabel_quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fault, if any, is reported in our one line
            header = header_class.from_fileobj(io.BytesIO(head), check=True)
            header.get_slope_inter()  # raises for a valid slope with an infinite intercept
    except Exception as error:  # nibabel refuses bad headers with many exception kinds
        raise DENError(path, f"not a readable NIfTI file ({_plain(error, path)})") from None
    stream.unread(head[header_class.template_dtype.itemsize :])
    return header


def _declared(header, path: Path) -> tuple[tuple[int, ...], np.dtype, int, float, float]:
    """Shape, stored voxel type, data offset and scaling the header declares, each checked."""
    shape = tuple(int(n) for n in header.get_data_shape())
    check_dimensions(shape, path)
    stored_type = np.dtype(header.get_data_dtype())
    if stored_type.kind == "c":
        raise DENError(path, f"voxel type {stored_type} is complex: DEN needs real-valued voxels")
    if stored_type.kind not in "iufb":
        raise DENError(path, f"voxel type {stored_type} is not numeric")
    declared_offset = float(header["vox_offset"])
    if not np.isfinite(declared_offset) or declared_offset < 0:
        raise DENError(path, f"the header's vox_offset {declared_offset} is not a byte position")
    offset = int(header.get_data_offset())
    if offset > header.template_dtype.itemsize + 4 + MAX_EXTENSION_BYTES:
        raise DENError(path, f"the header puts the voxels at byte {offset} (vox_offset), past "
                             f"{MAX_EXTENSION_BYTES >> 20} MiB of header extensions: not a real NIfTI file")
    slope, inter = header.get_slope_inter()
    slope = 1.0 if slope is None else float(slope)
    inter = 0.0 if inter is None else float(inter)
    if not (np.isfinite(slope) and np.isfinite(inter)):
        raise DENError(path, f"invalid intensity scaling in the header (scl_slope {slope}, scl_inter {inter})")
    return shape, stored_type, offset, slope, inter


def _scaled(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """The voxels as nibabel's array proxy gives them: unscaled as stored, else ``raw * slope + inter`` in the
    type nibabel's ``apply_read_scaling`` chooses (the values ``get_fdata()`` returns)."""
    if (slope, inter) == (1.0, 0.0):
        return raw
    from nibabel.volumeutils import apply_read_scaling

    with np.errstate(all="ignore"):  # an overflow gives infinite values, refused in one line by the label checks
        return apply_read_scaling(raw, np.float64(slope), np.float64(inter))


@contextmanager
def _nibabel_quiet() -> Iterator[None]:
    """Silence nibabel's header-check log lines (printed to stderr); the fault is reported in our one line."""
    from nibabel.imageglobals import logger

    was_disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was_disabled


def _plain(error: BaseException, path: Path) -> str:
    """The library's message without the file's own path (the error line names it once already)."""
    return describe_error(error).replace(str(path), path.name)


