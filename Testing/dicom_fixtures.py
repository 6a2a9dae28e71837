"""DICOM written from the real shared BraTS case by pydicom (the MR image series), highdicom and dcmqi (the SEGs),
highdicom's legacy converter (enhanced MR) and rt-utils (RTSTRUCT), for the DICOM reader tests: the same voxels and
geometry as the NIfTI files."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import nibabel
import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
BRATS_LABELS = {1: "necrosis", 2: "oedema", 3: "non-enhancing tumour", 4: "enhancing tumour"}


def write_mr_series(mri: Path, folder: Path) -> tuple[list, np.ndarray]:
    """Write a NIfTI MRI as a DICOM MR image series (one file per k plane, 16-bit stored values with a Rescale
    Slope and Intercept, as converters store float images); return the datasets and the volume a reader must
    see (stored x slope + intercept, float32)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    image = nibabel.load(mri)
    values = np.asarray(image.dataobj, dtype=np.float64)
    lps = LPS_FROM_RAS @ image.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    low, high = float(values.min()), float(values.max())
    slope = (high - low) / 65535
    stored = np.round((values - low) / slope).astype(np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k in range(values.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.Modality, ds.PatientID, ds.PatientName = "MR", "pat0001", "BraTS^0001"
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.ReferringPhysicianName = "", "O", "", ""
        ds.StudyID, ds.StudyDate, ds.StudyTime = "1", "20130101", "120000"
        ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 1, k + 1, "DENExtractor tests"
        ds.ImageOrientationPatient = [*(lps[:3, 0] / spacing[0]).tolist(), *(lps[:3, 1] / spacing[1]).tolist()]
        ds.ImagePositionPatient = (lps @ np.array([0, 0, k, 1.0]))[:3].tolist()
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # between rows (j), between columns (i)
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = values.shape[1], values.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = repr(slope)[:16], repr(low)[:16], "US"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(folder / f"MR{k + 1:04d}.dcm", enforce_file_format=True)
        datasets.append(pydicom.dcmread(folder / f"MR{k + 1:04d}.dcm"))
    written_slope, written_low = float(datasets[0].RescaleSlope), float(datasets[0].RescaleIntercept)
    return datasets, (stored.astype(np.float64) * written_slope + written_low).astype(np.float32)


def crop_brats_case(labels: Path, mri: Path, folder: Path) -> tuple[Path, Path]:
    """The real case cropped around its tumour (72 x 112 x 84 voxels, empty planes kept at both ends) as NIfTI
    files in ``folder``: (label map as uint8, MRI); their affines say where the crop lies."""
    box = (slice(48, 120), slice(68, 180), slice(24, 108))
    shift = np.eye(4)
    shift[:3, 3] = [part.start for part in box]
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source, name, dtype in ((labels, "labels.nii.gz", np.uint8), (mri, "mri.nii.gz", np.float32)):
        image = nibabel.load(source)
        data = np.asarray(image.dataobj)[box].astype(dtype)
        nibabel.save(nibabel.Nifti1Image(data, image.affine @ shift), folder / name)
        written.append(folder / name)
    return written[0], written[1]


def write_seg(labels: Path, series: list, path: Path, *, omit_empty_frames: bool = True,
              segmentation_type: str = "BINARY", single_segment: bool = False) -> Path:
    """Write a NIfTI label map as a DICOM SEG over ``series`` with highdicom: one segment per label value, its
    segment number the label value (``single_segment``: one segment, the whole tumour). BINARY or LABELMAP; empty
    frames omitted unless told otherwise, as highdicom does by default."""
    import highdicom
    from pydicom.uid import generate_uid

    values = np.asarray(nibabel.load(labels).dataobj).astype(np.uint8)
    if single_segment:
        values = (values > 0).astype(np.uint8)
    frames = np.stack([values[:, :, k].T for k in range(values.shape[2])])  # (planes, rows, columns)
    category = highdicom.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    neoplasm = highdicom.sr.CodedConcept("108369006", "SCT", "Neoplasm")
    names = {1: "tumour"} if single_segment else BRATS_LABELS
    descriptions = [
        highdicom.seg.SegmentDescription(number, name, category, neoplasm,
                                         highdicom.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number, name in names.items()
    ]
    seg = highdicom.seg.Segmentation(
        source_images=series, pixel_array=frames, segmentation_type=segmentation_type,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=2,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="DENExtractor tests",
        manufacturer_model_name="tests", software_versions="1", device_serial_number="1",
        omit_empty_frames=omit_empty_frames)
    seg.save_as(path)
    return path


def dcmqi_tool(name: str) -> str:
    """The path of one of dcmqi's command-line tools (installed into the test environment by ``pip install dcmqi``)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"dcmqi's {name} is not installed: pip install -e '.[test]'")
    return found


def write_dcmqi_seg(labels: Path, series_folder: Path, path: Path, *, labelmap: bool = False) -> Path:
    """Write a NIfTI label map (uint8) as a DICOM SEG over the series in ``series_folder`` with dcmqi's
    ``itkimage2segimage``, as 3D Slicer's Quantitative Reporting writes one (BINARY, or LABELMAP)."""
    def code(value: str, meaning: str) -> dict:
        return {"CodeValue": value, "CodingSchemeDesignator": "SCT", "CodeMeaning": meaning}

    segments = [{"labelID": number, "SegmentLabel": name, "SegmentDescription": name, "SegmentAlgorithmType": "MANUAL",
                 "SegmentedPropertyCategoryCodeSequence": code("49755003", "Morphologically Altered Structure"),
                 "SegmentedPropertyTypeCodeSequence": code("108369006", "Neoplasm")}
                for number, name in BRATS_LABELS.items()]
    metadata = path.with_suffix(".json")
    metadata.write_text(json.dumps({
        "ContentCreatorName": "DEN^tests", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
        "SeriesDescription": "tumour", "SeriesNumber": "300", "InstanceNumber": "1", "BodyPartExamined": "BRAIN",
        "segmentAttributes": [segments]}), encoding="utf-8")
    command = [dcmqi_tool("itkimage2segimage"), "--inputImageList", str(labels), "--inputDICOMDirectory",
               str(series_folder), "--inputMetadata", str(metadata), "--outputDICOM", str(path)]
    subprocess.run(command + (["--segmentationType", "labelmap"] if labelmap else []), check=True,
                   capture_output=True)
    return path


def read_with_dcmqi(seg: Path, folder: Path) -> nibabel.Nifti1Image:
    """The label map dcmqi's own reader (``segimage2itkimage --mergeSegments``) makes of a DICOM SEG, as NIfTI."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([dcmqi_tool("segimage2itkimage"), "--inputDICOM", str(seg), "--outputDirectory", str(folder),
                    "-t", "nifti", "--mergeSegments", "-p", "merged"], check=True, capture_output=True)
    return nibabel.load(folder / "merged-1.nii.gz")


def write_enhanced_mr(series: list, path: Path, transfer_syntax: str | None = None) -> Path:
    """An MR image series converted into one enhanced (multi-frame) file by highdicom's legacy converter, in its
    own new series (``transfer_syntax``: an encoding highdicom writes, e.g. RLE Lossless; default uncompressed)."""
    import highdicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter names attributes a pydicom-written series lacks
        logging.getLogger("highdicom").setLevel(logging.ERROR)
        enhanced = highdicom.legacy.LegacyConvertedEnhancedMRImage(
            series, generate_uid(), 5, generate_uid(), 1, transfer_syntax_uid=transfer_syntax or ExplicitVRLittleEndian)
    enhanced.SeriesDescription = "enhanced FLAIR"
    path.parent.mkdir(parents=True, exist_ok=True)
    enhanced.save_as(path)
    return path


def write_rtstruct(labels: Path, series_folder: Path, path: Path, names: dict[str, Any]) -> Path:
    """An RTSTRUCT drawn by rt-utils on the series in ``series_folder`` from a NIfTI label map: one ROI per name,
    ``names`` mapping each to the label values it covers."""
    from rt_utils import RTStructBuilder

    values = np.asarray(nibabel.load(labels).dataobj)
    with contextlib.redirect_stdout(io.StringIO()):  # rt-utils prints what it does
        rtstruct = RTStructBuilder.create_new(str(series_folder))
        for name, covered in names.items():
            mask = np.isin(values, covered).transpose(1, 0, 2)  # rt-utils draws (row, column, plane)
            rtstruct.add_roi(mask=mask, name=name)
    rtstruct.ds.save_as(path)
    return path
