"""DICOM written from the real shared BraTS case by pydicom (the MR image series) and highdicom (the SEG), for the
DICOM reader tests: the same voxels and geometry as the NIfTI files."""

from __future__ import annotations

from pathlib import Path

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


def write_seg(labels: Path, series: list, path: Path, *, omit_empty_frames: bool = True) -> Path:
    """Write a NIfTI label map as a DICOM SEG over ``series`` with highdicom: one segment per label value, its
    segment number the label value."""
    import highdicom
    from pydicom.uid import generate_uid

    values = np.asarray(nibabel.load(labels).dataobj).astype(np.uint8)
    frames = np.stack([values[:, :, k].T for k in range(values.shape[2])])  # (planes, rows, columns)
    category = highdicom.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    neoplasm = highdicom.sr.CodedConcept("108369006", "SCT", "Neoplasm")
    descriptions = [
        highdicom.seg.SegmentDescription(number, name, category, neoplasm,
                                         highdicom.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number, name in BRATS_LABELS.items()
    ]
    seg = highdicom.seg.Segmentation(
        source_images=series, pixel_array=frames, segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=2,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="DENExtractor tests",
        manufacturer_model_name="tests", software_versions="1", device_serial_number="1",
        omit_empty_frames=omit_empty_frames)
    seg.save_as(path)
    return path
