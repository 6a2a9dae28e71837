"""DICOM as other tools write it, from the real BraTS case pat0001 (cropped around its tumour to keep the tests
quick): SEGs by highdicom with its defaults (one segment, empty frames omitted, LABELMAP) and by dcmqi's
``itkimage2segimage`` (as 3D Slicer's Quantitative Reporting writes SEG), read back by dcmqi's own
``segimage2itkimage`` as the independent reader; the MR series as one enhanced file by highdicom's legacy converter;
an RTSTRUCT by rt-utils. The label maps equal the NIfTI's voxel for voxel (the RTSTRUCT's agreement stated as Dice
per label), and den-extract on the DICOM equals den-extract on the NIfTI (max difference 0) in every mode."""

from __future__ import annotations

import shutil

import nibabel
import numpy as np
import pytest
from helpers import PAT0001_FLAIR, PAT0001_LABELS, run_cli, save_nifti

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")
pytest.importorskip("dcmqi")
pytest.importorskip("rt_utils")

from DENExtractorLib.readers import load_case, load_image, source_sha256  # noqa: E402
from dicom_fixtures import (  # noqa: E402  (needs pydicom, highdicom)
    BRATS_LABELS,
    crop_brats_case,
    read_with_dcmqi,
    write_dcmqi_seg,
    write_enhanced_mr,
    write_mr_series,
    write_rtstruct,
    write_seg,
)
from pydicom.uid import RLELossless  # noqa: E402

pytestmark = pytest.mark.needs_data

SEG_WRITERS = ("highdicom_single", "highdicom_binary", "highdicom_labelmap", "highdicom_labelmap_16bit",
               "dcmqi_binary", "dcmqi_labelmap")


def as_16_bit_labelmap(seg: pydicom.Dataset, path, change=None):
    """A copy of an 8-bit LABELMAP SEG stored in 16 bits (``change`` may alter its values first)."""
    values = seg.pixel_array.astype(np.uint16)
    if change is not None:
        change(values)
    seg.BitsAllocated, seg.BitsStored, seg.HighBit = 16, 16, 15
    seg.PixelData = values.tobytes()
    seg.save_as(path)
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The cropped case as NIfTI, as an MR series, and as a SEG from each writer."""
    folder = tmp_path_factory.mktemp("writers")
    labels, mri = crop_brats_case(PAT0001_LABELS, PAT0001_FLAIR, folder / "nifti")
    series, values = write_mr_series(mri, folder / "series")
    affine = nibabel.load(labels).affine
    label_values = np.asarray(nibabel.load(labels).dataobj)
    segs = {
        "highdicom_single": write_seg(labels, series, folder / "highdicom_single.dcm", single_segment=True),
        "highdicom_binary": write_seg(labels, series, folder / "highdicom_binary.dcm"),
        "highdicom_labelmap": write_seg(labels, series, folder / "highdicom_labelmap.dcm",
                                        segmentation_type="LABELMAP"),
        "dcmqi_binary": write_dcmqi_seg(labels, folder / "series", folder / "dcmqi_binary.dcm"),
        "dcmqi_labelmap": write_dcmqi_seg(labels, folder / "series", folder / "dcmqi_labelmap.dcm", labelmap=True),
    }
    segs["highdicom_labelmap_16bit"] = as_16_bit_labelmap(pydicom.dcmread(segs["highdicom_labelmap"]),
                                                          folder / "highdicom_labelmap_16bit.dcm")
    rtstruct = write_rtstruct(labels, folder / "series", folder / "rtstruct.dcm",
                              {**{name: [number] for number, name in BRATS_LABELS.items()}, "tumour": [1, 2, 3, 4]})
    enhanced = {"uncompressed": write_enhanced_mr(series, folder / "enhanced" / "enhanced.dcm"),
                "RLE": write_enhanced_mr(series, folder / "enhanced_rle" / "enhanced_rle.dcm", RLELossless)}
    two_series = shutil.copytree(folder / "series", folder / "two_series")  # the series and its enhanced copy
    shutil.copy(enhanced["uncompressed"], two_series / "enhanced.dcm")
    return {
        "folder": folder, "series": folder / "series", "segs": segs, "labels": labels, "affine": affine,
        "label_values": label_values,
        "tumour": save_nifti(folder / "nifti" / "tumour.nii.gz", (label_values > 0).astype(np.uint8), affine),
        "mri_as_stored": save_nifti(folder / "nifti" / "mri_as_stored.nii.gz", values, affine),
        "rtstruct": rtstruct, "enhanced": enhanced, "two_series": two_series,
        "uids": {name: str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
                 for name, path in (("series", series[0].filename), ("enhanced", enhanced["uncompressed"]))},
    }


def expected_labels(written, name):
    """The NIfTI label map a writer's SEG holds: the whole tumour for a single segment, else every label."""
    return (written["label_values"] > 0).astype(np.uint8) if name == "highdicom_single" else written["label_values"]


@pytest.mark.slow
def test_the_writers_default_segs_are_the_kinds_the_issue_names(written):
    headers = {name: pydicom.dcmread(path, stop_before_pixels=True) for name, path in written["segs"].items()}
    single = headers["highdicom_single"]
    assert "SegmentIdentificationSequence" in single.SharedFunctionalGroupsSequence[0]  # not per frame
    for name in ("highdicom_labelmap", "highdicom_labelmap_16bit", "dcmqi_labelmap"):
        assert headers[name].SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7", name
    assert headers["highdicom_labelmap_16bit"].BitsAllocated == 16
    assert all(int(header.NumberOfFrames) < 84 * (1 if "labelmap" in name or "single" in name else 4)
               for name, header in headers.items())  # empty frames omitted: the tumour spans 74 of 84 planes


@pytest.mark.parametrize("name", SEG_WRITERS)
def test_each_writers_seg_on_its_series_equals_the_nifti_and_dcmqis_reading(written, name, tmp_path):
    seg = written["segs"][name]
    volume, _ = load_case(seg, grid=written["series"])
    expected = expected_labels(written, name)
    assert volume.shape == expected.shape == (72, 112, 84)
    assert np.array_equal(volume.data, expected)
    np.testing.assert_allclose(volume.affine, written["affine"], atol=1e-6)

    independent = read_with_dcmqi(seg, tmp_path / "dcmqi")  # dcmqi's reader: the planes the frames span
    offset = np.linalg.inv(volume.affine) @ independent.affine
    np.testing.assert_allclose(offset[:3, :3], np.eye(3), atol=1e-6)  # same axes and spacing
    first = round(float(offset[2, 3]))
    assert offset[:3, 3] == pytest.approx([0, 0, first], abs=1e-4)
    planes = independent.shape[2]
    assert np.array_equal(volume.data[:, :, first:first + planes], np.asarray(independent.dataobj))
    assert not np.any(np.delete(volume.data, np.s_[first:first + planes], axis=2))


def test_a_seg_omitting_empty_frames_alone_is_refused_naming_how_to_give_its_series(written, tmp_path, capsys):
    seg = written["segs"]["highdicom_binary"]
    status, lines = run_cli([seg, "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0] == (f"den-extract: error: {seg}: its frames span only 74 of the 84 images it references (its "
                        "writer omitted empty frames), so its grid is not the series': give the image series it was "
                        "drawn on (--grid FOLDER in label mode, or --image FOLDER in image mode; a 'grid' or 'image' "
                        "column in a cases CSV)")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_dcmqi_segs_alone_are_read_on_the_planes_they_span_as_dcmqi_reads_them(written, tmp_path):
    for name in ("dcmqi_binary", "dcmqi_labelmap"):  # dcmqi references only the images its frames lie on
        volume, _ = load_case(written["segs"][name])
        independent = read_with_dcmqi(written["segs"][name], tmp_path / name)
        assert np.array_equal(volume.data, np.asarray(independent.dataobj)), name
        np.testing.assert_allclose(volume.affine, independent.affine, atol=1e-4)


def test_a_seg_drawn_on_every_other_plane_keeps_the_spacing_it_declares(written, tmp_path):
    every_other = written["label_values"].copy()
    every_other[:, :, 1::2] = 0
    labels = save_nifti(tmp_path / "every_other.nii.gz", every_other, written["affine"])
    series = [pydicom.dcmread(path) for path in sorted(written["series"].iterdir())]
    seg = write_seg(labels, series, tmp_path / "every_other.dcm")
    header = pydicom.dcmread(seg, stop_before_pixels=True)
    assert float(header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices) == 1.0
    volume, _ = load_case(seg, grid=written["series"])
    assert np.array_equal(volume.data, every_other)
    assert np.linalg.norm(volume.affine[:3, 2]) == pytest.approx(1.0)


def test_a_16_bit_labelmap_value_naming_no_segment_is_refused_as_itself(written, tmp_path, capsys):
    def put_257(values):
        values[values == 4] = 257

    seg = as_16_bit_labelmap(pydicom.dcmread(written["segs"]["highdicom_labelmap"]), tmp_path / "257.dcm", put_257)
    status, lines = run_cli([seg, "--grid", written["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0] == (f"den-extract: error: {seg}: pixel value(s) [257] name no segment the SEG describes "
                        "(segments [1, 2, 3, 4])")


def test_a_frame_between_the_declared_planes_is_refused(written, tmp_path, capsys):
    seg = pydicom.dcmread(written["segs"]["highdicom_single"])
    position = seg.PerFrameFunctionalGroupsSequence[5].PlanePositionSequence[0]
    position.ImagePositionPatient = [*position.ImagePositionPatient[:2], float(position.ImagePositionPatient[2]) + 0.5]
    between = tmp_path / "between.dcm"
    seg.save_as(between)
    status, lines = run_cli([between, "--grid", written["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0] == (f"den-extract: error: {between}: its frames do not lie on one stack of evenly spaced planes 1 "
                        "mm apart, as declared (a frame between planes, or frames oriented differently)")


MODES = {"reference": ["--mode", "reference"], "axial": ["--mode", "oriented", "--plane", "axial"],
         "coronal": ["--mode", "oriented", "--plane", "coronal"],
         "sagittal": ["--mode", "oriented", "--plane", "sagittal"]}
MODE_CASES = {  # every SEG kind and every mode at least once, each beside the NIfTI it must equal
    "reference": ("highdicom_single", "highdicom_binary", "rtstruct_tumour"),
    "axial": ("highdicom_labelmap", "dcmqi_binary"),
    "coronal": ("highdicom_labelmap_16bit",),
    "sagittal": ("dcmqi_labelmap", "image_dicom", "image_seg_with_nifti_mri", "image_enhanced_mr"),  # 72 slices
}
"""The label maps of all six SEG kinds already equal the NIfTI's voxel for voxel (above), so each kind runs through
den-extract in one mode, and each mode runs at least one kind: 16 extractions rather than 44. The RTSTRUCT and the
enhanced MR are read from one folder holding both series, each chosen by a 'series' column."""


def baseline(name):
    """The NIfTI case a DICOM case must equal."""
    if name.startswith("image_"):
        return "image_nifti"
    return "nifti_tumour" if name in ("highdicom_single", "rtstruct_tumour") else "nifti"


@pytest.fixture(scope="module", params=list(MODES))
def features_by_mode(request, written, tmp_path_factory):
    """(mode, features by case) of one den-extract run over a cases CSV holding that mode's DICOM cases and the
    NIfTI cases they must equal."""
    mode, segs, series = request.param, written["segs"], written["series"]
    two_series, uids = written["two_series"], written["uids"]
    rows = {name: f"{name},{segs[name]},,{series},," for name in SEG_WRITERS}
    rows |= {"nifti": f"nifti,{written['labels']},,,,", "nifti_tumour": f"nifti_tumour,{written['tumour']},,,,",
             "image_dicom": f"image_dicom,{segs['highdicom_binary']},{series},,,",
             "image_seg_with_nifti_mri": f"image_seg_with_nifti_mri,{segs['dcmqi_binary']},{written['mri_as_stored']},,,",
             "image_nifti": f"image_nifti,{written['labels']},{written['mri_as_stored']},,,",
             "rtstruct_tumour": f"rtstruct_tumour,{written['rtstruct']},,{two_series},{uids['series']},tumour",
             "image_enhanced_mr": f"image_enhanced_mr,{written['labels']},{two_series},,{uids['enhanced']},"}
    names = sorted({*MODE_CASES[mode], *map(baseline, MODE_CASES[mode])})
    folder = tmp_path_factory.mktemp(mode)
    cases = folder / "cases.csv"
    cases.write_text("case_id,segmentation,image,grid,series,roi\n" + "".join(f"{rows[name]}\n" for name in names),
                     encoding="utf-8")
    from DENExtractorLib.cli.extract import main

    status = main(["--cases", str(cases), "-o", str(folder / "out"), "--no-png", "--quiet", *MODES[mode]])
    assert status == 0
    return mode, {path.name[: -len("_den.npy")]: np.load(path) for path in (folder / "out").glob("*_den.npy")}


@pytest.mark.slow
def test_den_extract_on_every_writers_seg_equals_the_nifti_in_every_mode(features_by_mode):
    mode, features = features_by_mode
    for name in MODE_CASES[mode]:
        assert float(np.max(np.abs(features[name] - features[baseline(name)]))) == 0.0, (mode, name)


def test_every_seg_kind_and_every_mode_runs_through_den_extract():
    covered = [name for names in MODE_CASES.values() for name in names]
    assert sorted(covered) == sorted([*SEG_WRITERS, "image_dicom", "image_seg_with_nifti_mri", "rtstruct_tumour",
                                      "image_enhanced_mr"])
    assert all(MODE_CASES[mode] for mode in MODES)


@pytest.mark.slow
def test_a_seg_with_its_mri_as_nifti_on_the_same_grid_is_accepted_and_off_grid_refused(written, tmp_path, capsys):
    seg = written["segs"]["dcmqi_binary"]
    volume, image = load_case(seg, written["mri_as_stored"])  # the dcm2niix workflow: MRI as NIfTI, SEG as DICOM
    assert np.array_equal(volume.data, written["label_values"]) and volume.shape == image.shape
    mri = np.asarray(nibabel.load(written["mri_as_stored"]).dataobj)
    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = mri.shape[0] - 1
    flipped = save_nifti(tmp_path / "flipped.nii.gz", mri[::-1], written["affine"] @ flip)  # same voxels, stored the
    volume, _ = load_case(seg, flipped)  # other way round
    assert np.array_equal(volume.data, written["label_values"][::-1])
    shifted_affine = written["affine"].copy()
    shifted_affine[2, 3] += 0.3  # 0.3 mm off the series' planes
    shifted = save_nifti(tmp_path / "shifted.nii.gz", mri, shifted_affine)
    status, lines = run_cli([seg, "--image", shifted, "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"den-extract: error: {seg}: its frames do not lie on the voxels of {shifted} (within "
                               "0.001 voxel;")


@pytest.mark.parametrize("encoding", ["uncompressed", "RLE"])
def test_an_enhanced_mr_reads_as_the_series_it_was_converted_from(written, encoding):
    enhanced = written["enhanced"][encoding]
    assert pydicom.dcmread(enhanced, stop_before_pixels=True).SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.4"
    series = load_image(written["series"])
    mri = nibabel.load(written["mri_as_stored"])
    for source in (enhanced, enhanced.parent):  # the file itself, or the folder holding it
        volume = load_image(source)
        assert volume.shape == series.shape == (72, 112, 84)
        assert float(np.max(np.abs(volume.data - series.data))) == 0.0
        assert float(np.max(np.abs(volume.data - np.asarray(mri.dataobj)))) == 0.0
        np.testing.assert_allclose(volume.affine, mri.affine, atol=1e-6)
    assert load_image(enhanced).sha256 == source_sha256(enhanced) == source_sha256(enhanced.parent)


@pytest.mark.slow
def test_a_series_is_chosen_from_a_folder_of_two_by_its_uid(written, tmp_path, capsys):
    two, uids = written["two_series"], written["uids"]
    listed = "; ".join(sorted([f"{uids['enhanced']} ('enhanced FLAIR', 1 files)",
                               f"{uids['series']} ('no description', 84 files)"]))
    status, lines = run_cli([written["segs"]["dcmqi_binary"], "--image", two, "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {two}: the folder holds 2 image series, {listed}: choose "
                                     "one with --series UID (a 'series' column in a cases CSV)"]
    series = load_image(written["series"])
    for name, drawn in (("series", written["segs"]["dcmqi_binary"]), ("enhanced", written["labels"])):
        segmentation, image = load_case(drawn, two, series=uids[name])  # (the SEG references the first series only)
        assert np.array_equal(segmentation.data, written["label_values"]), name
        assert float(np.max(np.abs(image.data - series.data))) == 0.0, name
        assert image.sha256 == source_sha256(two, uids[name]) != source_sha256(two), name  # --resume tells them apart
    status, lines = run_cli([written["segs"]["dcmqi_binary"], "--image", two, "--series", "1.2.3", "-o",
                             tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {two}: no image series 1.2.3 here; the folder holds {listed}"]
    status, lines = run_cli([written["labels"], "--series", uids["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {written['labels']}: a series ({uids['series']}) is chosen, "
                                     "but no DICOM image series is given to choose it from (--image or --grid FOLDER)"]


@pytest.mark.slow
def test_an_rtstruct_from_the_real_label_map_reads_back_with_its_dice_per_label(written):
    dice = {}
    for number, name in BRATS_LABELS.items():
        volume, _ = load_case(written["rtstruct"], grid=written["series"], roi=name)
        assert volume.shape == (72, 112, 84) and volume.segments == ({"number": 1, "label": name},)
        np.testing.assert_allclose(volume.affine, written["affine"], atol=1e-6)
        truth = written["label_values"] == number
        drawn = volume.data == 1
        dice[name] = 2 * int(np.count_nonzero(truth & drawn)) / (int(np.count_nonzero(truth)) + int(np.count_nonzero(drawn)))
    print("RTSTRUCT (rt-utils) read back against the label map it was drawn from, Dice per label:",
          ", ".join(f"{name} {value:.4f}" for name, value in dice.items()))
    assert min(dice.values()) >= 0.99, dice


@pytest.mark.slow
def test_an_rtstruct_roi_is_chosen_by_name_and_a_missing_one_refused_listing_them(written, tmp_path, capsys):
    rtstruct, series = written["rtstruct"], written["series"]
    listed = "'necrosis', 'oedema', 'non-enhancing tumour', 'enhancing tumour', 'tumour'"
    status, lines = run_cli([rtstruct, "--grid", series, "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {rtstruct}: the RTSTRUCT holds 5 ROIs ({listed}): choose "
                                     "one with --roi NAME (a 'roi' column in a cases CSV)"]
    status, lines = run_cli([rtstruct, "--grid", series, "--roi", "GTV", "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {rtstruct}: no ROI named 'GTV'; the RTSTRUCT holds {listed}"]
    status, lines = run_cli([rtstruct, "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1 and "an RTSTRUCT holds contours drawn on the images of a series" in lines[0]
    status, lines = run_cli([written["segs"]["dcmqi_binary"], "--grid", series, "--roi", "tumour", "-o",
                             tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1 and "is chosen, but the segmentation is not a DICOM RTSTRUCT" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_hostile_rtstruct_is_refused_before_rasterising(written, tmp_path, capsys):
    rtstruct = pydicom.dcmread(written["rtstruct"])
    contour = rtstruct.ROIContourSequence[4].ContourSequence[0]
    contour.NumberOfContourPoints = 10**6  # far more points than the coordinates it holds
    lying = tmp_path / "lying.dcm"
    rtstruct.save_as(lying)
    status, lines = run_cli([lying, "--grid", written["series"], "--roi", "tumour", "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"den-extract: error: {lying}: a contour of the ROI 'tumour' declares 1000000 points "
                               "but holds ")
    rtstruct = pydicom.dcmread(written["rtstruct"])
    rtstruct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0] \
        .SeriesInstanceUID = "1.2.3.4"
    other = tmp_path / "other.dcm"
    rtstruct.save_as(other)
    status, lines = run_cli([other, "--grid", written["series"], "--roi", "tumour", "-o", tmp_path / "out"], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"den-extract: error: {other}: the RTSTRUCT references 1.2.3.4, not the image series "
                               "given")


def highdicom_seg(written, path, frames, segmentation_type, numbers=(1, 2)):
    """A SEG written by highdicom over the cropped series from ``frames`` (planes, rows, columns[, segments])."""
    import highdicom
    from pydicom.uid import generate_uid

    category = highdicom.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    neoplasm = highdicom.sr.CodedConcept("108369006", "SCT", "Neoplasm")
    series = [pydicom.dcmread(file) for file in sorted(written["series"].iterdir())]
    descriptions = [highdicom.seg.SegmentDescription(number, f"segment {number}", category, neoplasm,
                                                     highdicom.seg.SegmentAlgorithmTypeValues.MANUAL)
                    for number in numbers]
    highdicom.seg.Segmentation(
        source_images=series, pixel_array=frames, segmentation_type=segmentation_type,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=3,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="DENExtractor tests",
        manufacturer_model_name="tests", software_versions="1", device_serial_number="1").save_as(path)
    return path


def test_overlapping_segments_and_fractional_segs_are_refused_in_one_line(written, tmp_path, capsys):
    planes = written["label_values"].transpose(2, 1, 0)  # (planes, rows, columns)
    tumour, core = planes > 0, np.isin(planes, (1, 3, 4))  # the core lies inside the tumour: they overlap
    overlapping = highdicom_seg(written, tmp_path / "overlapping.dcm", np.stack([tumour, core], axis=-1).astype(np.uint8),
                                "BINARY")
    status, lines = run_cli([overlapping, "--grid", written["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {overlapping}: some voxels belong to two segments at once; "
                                     "DEN needs one label per voxel: remove the overlap or keep one segment"]
    fractional = highdicom_seg(written, tmp_path / "fractional.dcm", tumour.astype(np.float32) * 0.75, "FRACTIONAL",
                               numbers=(1,))
    status, lines = run_cli([fractional, "--grid", written["series"], "-o", tmp_path / "out"], capsys)
    assert status == 1 and lines == [f"den-extract: error: {fractional}: segmentation type FRACTIONAL: DEN reads "
                                     "BINARY and LABELMAP SEGs (threshold a FRACTIONAL one into a BINARY SEG or a "
                                     "label map first)"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
