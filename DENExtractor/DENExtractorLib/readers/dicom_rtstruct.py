"""Reading one ROI of a DICOM RTSTRUCT (contours, as radiotherapy planning systems and many PACS exports deliver
them) as a label map on the image series it was drawn on: 1 inside the ROI, 0 outside; rasterised by rt-utils.

The ROI is chosen by name (``--roi``, a ``roi`` column); an RTSTRUCT holding one ROI needs no name. Before any
contour is rasterised: the file's size (:data:`MAX_RTSTRUCT_BYTES`), the RTSTRUCT must reference the series given,
the ROI's contours must be closed planar ones, each naming an image of that series, and their points (counted from
the headers, :data:`MAX_CONTOUR_POINTS`) and the label map within the memory bound.

rt-utils fills each plane's polygons (OpenCV's ``fillPoly``, holes by the even-odd rule) on a canvas it sizes
(Columns, Rows) but indexes (row, column), and scales in-plane by Pixel Spacing in the other order: DEN hands it a
square canvas and crops it (tested on the 72 x 112 crop of a real case), and refuses pixels that are not square.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DENError, describe_error
from ..hashing import file_sha256
from .dicom_files import DicomFile, quietly
from .limits import exceeds_limit

MAX_RTSTRUCT_BYTES = 256 * 2**20
"""Largest RTSTRUCT file read: pydicom holds it whole (clinical ones with every organ are tens of MB)."""
MAX_CONTOUR_POINTS = 2_000_000
"""Most contour points one ROI may hold (each becomes three Python floats while rasterised: about 200 MB)."""
ROI_HINT = "choose one with --roi NAME (a 'roi' column in a cases CSV)"


def read_rtstruct(dicom: DicomFile, series_uid: str, planes: list[Any], roi: str | None,
                  ) -> tuple[np.ndarray, str, list[dict]]:
    """Return (label map (i, j, k) of 0 and 1, file sha256, the segment ``[{"number": 1, "label": ROI name}]``) of
    one ROI of an RTSTRUCT, on the series ``series_uid`` whose single-frame headers ``planes`` are given in plane
    order (k along the normal from the lowest plane, as the series reader lays them out)."""
    path, header = dicom.path, dicom.header
    size = path.stat().st_size
    if size > MAX_RTSTRUCT_BYTES:
        raise DENError(path, f"the RTSTRUCT holds {size / 2**20:.0f} MiB, more than the {MAX_RTSTRUCT_BYTES // 2**20} "
                             "MiB DEN reads")
    _check_reference(header, series_uid, path)
    number, name = _chosen_roi(header, roi, path)
    contours = _contours(header, number, name, path)
    rows, columns = int(planes[0].Rows), int(planes[0].Columns)
    problem = exceeds_limit(max(rows, columns) ** 2 * len(planes) * 2)
    if problem:
        raise DENError(path, problem)
    _check_contour_images(contours, planes, name, path)
    mask = _rasterised(header, planes, name, path)[:rows, :columns]  # (row, column, plane) on the square canvas
    labels = np.ascontiguousarray(mask.transpose(1, 0, 2)).astype(np.uint8)  # (i = column, j = row, k)
    return labels, file_sha256(path), [{"number": 1, "label": name}]


def _check_reference(header: Any, series_uid: str, path: Path) -> None:
    """The RTSTRUCT must reference the image series it is read on."""
    referenced = {str(series.get("SeriesInstanceUID", ""))
                  for frame in header.get("ReferencedFrameOfReferenceSequence", [])
                  for study in frame.get("RTReferencedStudySequence", [])
                  for series in study.get("RTReferencedSeriesSequence", [])}
    if referenced and series_uid not in referenced:
        raise DENError(path, f"the RTSTRUCT references {', '.join(sorted(referenced))}, not the image series given "
                             f"({series_uid}): pair it with the series it was drawn on")


def _chosen_roi(header: Any, roi: str | None, path: Path) -> tuple[str, str]:
    """(ROI Number, ROI Name) of the ROI asked for, or of the only one; refused naming the ROIs it holds."""
    rois = [(str(item.get("ROINumber", "")), str(item.get("ROIName", "")))
            for item in header.get("StructureSetROISequence", [])]
    if not rois:
        raise DENError(path, "the RTSTRUCT holds no ROI")
    names = ", ".join(repr(name) for _, name in rois)
    if roi is None:
        if len(rois) > 1:
            raise DENError(path, f"the RTSTRUCT holds {len(rois)} ROIs ({names}): {ROI_HINT}")
        return rois[0]
    chosen = [item for item in rois if item[1] == roi]
    if not chosen:
        raise DENError(path, f"no ROI named {roi!r}; the RTSTRUCT holds {names}")
    if len(chosen) > 1:
        raise DENError(path, f"{len(chosen)} ROIs are named {roi!r}: DEN cannot tell which to read")
    return chosen[0]


def _contours(header: Any, number: str, name: str, path: Path) -> list[Any]:
    """The ROI's contours, checked before rasterising: closed planar, points counted against the bound, each
    contour's data as long as its declared points (read from the element's length, not converted)."""
    contours = next((list(item.get("ContourSequence", [])) for item in header.get("ROIContourSequence", [])
                     if str(item.get("ReferencedROINumber", "")) == number), [])
    if not contours:
        raise DENError(path, f"the ROI {name!r} has no contours")
    points = 0
    for contour in contours:
        kind = str(contour.get("ContourGeometricType", ""))
        if kind != "CLOSED_PLANAR":
            raise DENError(path, f"the ROI {name!r} holds a {kind or 'untyped'} contour: DEN rasterises closed planar "
                                 "contours")
        try:
            declared = int(contour.NumberOfContourPoints)
        except (AttributeError, TypeError, ValueError):
            raise DENError(path, f"a contour of the ROI {name!r} lacks a valid Number of Contour Points") from None
        points += declared
        if points > MAX_CONTOUR_POINTS:
            raise DENError(path, f"the ROI {name!r} holds more than {MAX_CONTOUR_POINTS} contour points, more than DEN "
                                 "rasterises")
        stored = _value_bytes(contour, "ContourData")
        if declared < 1 or not 6 * declared - 1 <= stored <= 51 * declared:  # 3 numbers of 1-16 characters each
            raise DENError(path, f"a contour of the ROI {name!r} declares {declared} points but holds {stored} bytes "
                                 "of coordinates")
    return contours


def _value_bytes(item: Any, keyword: str) -> int:
    """The length in bytes of an element's stored value, without converting it."""
    from pydicom.datadict import tag_for_keyword

    element = item.get_item(tag_for_keyword(keyword))
    if element is None:
        return 0
    value = element.value
    return len(value) if isinstance(value, bytes) else len("\\".join(str(number) for number in value))


def _check_contour_images(contours: list[Any], planes: list[Any], name: str, path: Path) -> None:
    """rt-utils places each contour on the image it references: a contour naming none of the series' images would
    be lost, so it is refused."""
    images = {str(plane.SOPInstanceUID) for plane in planes}
    for contour in contours:
        referenced = {str(item.get("ReferencedSOPInstanceUID", "")) for item in contour.get("ContourImageSequence", [])}
        if not referenced & images:
            raise DENError(path, f"a contour of the ROI {name!r} references no image of the series given (Contour "
                                 "Image Sequence): pair it with the series it was drawn on")


def _rasterised(header: Any, planes: list[Any], name: str, path: Path) -> np.ndarray:
    """rt-utils' mask of the ROI on a square canvas, indexed (row, column, plane)."""
    from pydicom.dataset import Dataset

    try:
        from rt_utils.rtstruct import RTStruct
    except ImportError:
        raise DENError(path, "reading an RTSTRUCT needs rt-utils, which is not installed: pip install -e '.[dicom]' "
                             "from a DENExtractor checkout (or pip install rt-utils)") from None
    spacing = [float(value) for value in planes[0].PixelSpacing]
    if abs(spacing[0] - spacing[1]) > 1e-6 * max(spacing):
        raise DENError(path, f"the series' pixels are {spacing[0]:g} x {spacing[1]:g} mm: DEN rasterises RTSTRUCT "
                             "contours on square pixels only")
    side = max(int(planes[0].Rows), int(planes[0].Columns))
    canvas = []
    for plane in planes:  # only what rt-utils reads of an image, on a square canvas
        square = Dataset()
        square.SOPInstanceUID, square.Rows, square.Columns = plane.SOPInstanceUID, side, side
        square.ImagePositionPatient, square.ImageOrientationPatient = plane.ImagePositionPatient, plane.ImageOrientationPatient
        square.PixelSpacing = plane.PixelSpacing
        canvas.append(square)
    try:
        with quietly():
            return np.asarray(RTStruct(canvas, header).get_roi_mask_by_name(name), dtype=bool)
    except Exception as error:  # rt-utils raises bare Exceptions on malformed contours
        raise DENError(path, f"the ROI {name!r} cannot be rasterised ({describe_error(error)})") from None
