"""Volume assembly: real CT/MR series from ../shared/data and small synthetic series whose
geometry is chosen, checked against the DICOM image plane definition (PS3.3 C.7.6.2.1.1)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from openjpeg.utils import encode_array
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicom_node.errors import VolumeAssemblyError
from dicom_node.series.assembly import AssembledSeries, AssemblyRejection, assemble_series
from tests.support.peers import shared_data
from tests.support.series_files import (
    AXIAL,
    Orientation,
    positions_along,
    slice_dataset,
    slice_pixels,
    write_series,
)

SAGITTAL_MR = ("mr", "dcmqa_decubitus_t1_sag_HFS")
J2K_CT = ("ct", "totalseg_example_ct_dicom", "dicom")
ENHANCED_CT = ("ct", "pydicom_data_enhanced_ct", "eCT_Supplemental.dcm")
ENHANCED_MR = ("mr", "pydicom_data_enhanced_mr", "emri_small.dcm")
SMALL_CT = ("seg_sr", "dcmqi_24x38x3_labelmap")

HFP: Orientation = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
FFS: Orientation = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL: Orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
OBLIQUE: Orientation = (0.8660254, 0.5, 0.0, -0.3535534, 0.6123724, -0.7071068)


def files(*parts: str) -> list[Path]:
    return sorted(shared_data(*parts).glob("*.dcm"))


def position_of(series: AssembledSeries, k: int) -> npt.NDArray[np.float64]:
    header = series.headers[series.frames[k].sop_instance_uid]
    return np.asarray(header.ImagePositionPatient, dtype=float)


def dicom_pixel_position(header: Dataset, row: int, column: int) -> npt.NDArray[np.float64]:
    """PS3.3 C.7.6.2.1.1: position of pixel (row, column) from the header alone."""
    position = np.asarray(header.ImagePositionPatient, dtype=float)
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float)
    row_spacing, column_spacing = (float(x) for x in header.PixelSpacing)
    return position + cosines[:3] * column_spacing * column + cosines[3:] * row_spacing * row


def stored_values(path: Path) -> npt.NDArray[np.float64]:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def copy_with_syntax(paths: list[Path], folder: Path, syntax: UID) -> list[Path]:
    folder.mkdir()
    copies = []
    for path in paths:
        ds = pydicom.dcmread(path)
        if syntax == DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = syntax  # the dataset is deflated when written
        else:
            ds.compress(syntax)
        ds.save_as(folder / path.name, enforce_file_format=True)
        copies.append(folder / path.name)
    return copies


# Real sagittal MR (Siemens Prisma, 35 slices, no rescale)


@pytest.fixture(scope="module")
def sagittal_mr() -> AssembledSeries:
    return assemble_series(files(*SAGITTAL_MR))


def test_mr_first_and_last_voxel_are_at_the_first_and_last_slice_positions(
    sagittal_mr: AssembledSeries,
) -> None:
    volume, last = sagittal_mr.volume, sagittal_mr.volume.shape[0] - 1
    np.testing.assert_allclose(volume.index_to_world((0, 0, 0)), position_of(sagittal_mr, 0))
    np.testing.assert_allclose(
        volume.index_to_world((last, 0, 0)), position_of(sagittal_mr, last), atol=1e-4
    )


def test_mr_every_slice_is_at_its_header_position(sagittal_mr: AssembledSeries) -> None:
    volume = sagittal_mr.volume
    for k in range(volume.shape[0]):
        header = sagittal_mr.headers[sagittal_mr.frames[k].sop_instance_uid]
        np.testing.assert_allclose(
            volume.index_to_world((k, 255, 17)), dicom_pixel_position(header, 255, 17), atol=1e-4
        )


def test_mr_direction_and_spacing_match_the_headers(sagittal_mr: AssembledSeries) -> None:
    volume = sagittal_mr.volume
    header = sagittal_mr.headers[sagittal_mr.frames[0].sop_instance_uid]
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float)
    last = volume.shape[0] - 1
    span = position_of(sagittal_mr, last) - position_of(sagittal_mr, 0)
    np.testing.assert_allclose(volume.direction[2], cosines[:3])
    np.testing.assert_allclose(volume.direction[1], cosines[3:])
    np.testing.assert_allclose(volume.direction[0], span / np.linalg.norm(span), atol=1e-6)
    row_spacing, column_spacing = (float(x) for x in header.PixelSpacing)
    expected = (float(np.linalg.norm(span)) / last, row_spacing, column_spacing)
    np.testing.assert_allclose(np.asarray(volume.spacing), np.asarray(expected))


def test_mr_without_rescale_keeps_stored_values(sagittal_mr: AssembledSeries) -> None:
    k = 17
    expected = pydicom.dcmread(sagittal_mr.frames[k].path).pixel_array
    np.testing.assert_array_equal(sagittal_mr.volume.array[k], expected)


def test_shuffled_paths_give_the_same_volume(sagittal_mr: AssembledSeries) -> None:
    paths = files(*SAGITTAL_MR)
    random.Random(7).shuffle(paths)
    shuffled = assemble_series(paths)
    np.testing.assert_array_equal(shuffled.volume.array, sagittal_mr.volume.array)
    assert shuffled.volume.affine.tolist() == sagittal_mr.volume.affine.tolist()
    assert shuffled.frames == sagittal_mr.frames


def test_headers_are_keyed_by_sop_instance_uid_without_pixel_data(
    sagittal_mr: AssembledSeries,
) -> None:
    assert set(sagittal_mr.headers) == {frame.sop_instance_uid for frame in sagittal_mr.frames}
    assert all("PixelData" not in header for header in sagittal_mr.headers.values())
    assert all(frame.frame_number is None for frame in sagittal_mr.frames)


# Real JPEG 2000 CT (20 slices, empty SOP/Series UIDs in the dataset)


@pytest.fixture(scope="module")
def j2k_ct() -> AssembledSeries:
    return assemble_series(files(*J2K_CT), decode_workers=2)


def test_j2k_ct_decodes_to_pydicom_hounsfield_units(j2k_ct: AssembledSeries) -> None:
    assert j2k_ct.volume.array.dtype == np.float32
    assert j2k_ct.volume.modality == "CT"
    for k, frame in enumerate(j2k_ct.frames):
        np.testing.assert_array_equal(j2k_ct.volume.array[k], stored_values(frame.path))


def test_j2k_ct_decoded_in_this_process_is_the_same(j2k_ct: AssembledSeries) -> None:
    inline = assemble_series(files(*J2K_CT), decode_workers=1)
    np.testing.assert_array_equal(inline.volume.array, j2k_ct.volume.array)


def test_j2k_ct_sop_instance_uids_come_from_the_file_meta(j2k_ct: AssembledSeries) -> None:
    for frame in j2k_ct.frames:
        meta = pydicom.dcmread(frame.path, stop_before_pixels=True).file_meta
        assert frame.sop_instance_uid == meta.MediaStorageSOPInstanceUID
        assert j2k_ct.headers[frame.sop_instance_uid].SOPInstanceUID == frame.sop_instance_uid


def test_j2k_ct_slices_ascend_along_the_normal(j2k_ct: AssembledSeries) -> None:
    heights = [position_of(j2k_ct, k)[2] for k in range(len(j2k_ct.frames))]
    assert heights == sorted(heights)
    assert j2k_ct.volume.spacing[0] == pytest.approx(2.0)


# Enhanced (multi-frame) images


@pytest.fixture(scope="module")
def enhanced_ct() -> AssembledSeries:
    return assemble_series([shared_data(*ENHANCED_CT)])


def test_enhanced_ct_slices_follow_the_per_frame_positions(enhanced_ct: AssembledSeries) -> None:
    # Frame 1 is at z -159, frame 2 at z -149; the normal of [-1,0,0,0,1,0] is -z.
    assert [frame.frame_number for frame in enhanced_ct.frames] == [2, 1]
    assert enhanced_ct.volume.origin == (99.5, -301.5, -149.0)
    assert enhanced_ct.volume.direction[0] == (0.0, 0.0, -1.0)
    assert enhanced_ct.volume.spacing == pytest.approx((10.0, 0.388672, 0.388672))


def test_enhanced_ct_applies_the_shared_rescale(enhanced_ct: AssembledSeries) -> None:
    pixels = pydicom.dcmread(shared_data(*ENHANCED_CT)).pixel_array
    np.testing.assert_array_equal(enhanced_ct.volume.array, pixels[::-1] - 1024.0)


def test_enhanced_ct_per_frame_rescale_is_applied_per_frame(tmp_path: Path) -> None:
    ds = pydicom.dcmread(shared_data(*ENHANCED_CT))
    del ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    for item, slope in zip(ds.PerFrameFunctionalGroupsSequence, (2.0, 0.5), strict=True):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, -7, "US"
        item.PixelValueTransformationSequence = DicomSequence([transform])
    ds.save_as(tmp_path / "per_frame.dcm")
    series = assemble_series([tmp_path / "per_frame.dcm"])
    np.testing.assert_array_equal(series.volume.array[1], ds.pixel_array[0] * 2.0 - 7)
    np.testing.assert_array_equal(series.volume.array[0], ds.pixel_array[1] * 0.5 - 7)


@pytest.mark.parametrize("layout", ["basic_offsets", "no_offsets", "two_fragments", "extended"])
def test_enhanced_ct_compressed_frames_are_found_in_any_encapsulation(
    tmp_path: Path, enhanced_ct: AssembledSeries, layout: str
) -> None:
    ds = pydicom.dcmread(shared_data(*ENHANCED_CT))
    frames = [encode_array(frame) for frame in ds.pixel_array]
    if layout == "extended":
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
            frames
        )
    else:
        ds.PixelData = encapsulate(
            frames,
            fragments_per_frame=2 if layout == "two_fragments" else 1,
            has_bot=layout == "basic_offsets",
        )
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(tmp_path / "j2k.dcm")
    series = assemble_series([tmp_path / "j2k.dcm"])
    np.testing.assert_array_equal(series.volume.array, enhanced_ct.volume.array)


def test_enhanced_ct_in_implicit_vr_is_the_same(
    tmp_path: Path, enhanced_ct: AssembledSeries
) -> None:
    ds = pydicom.dcmread(shared_data(*ENHANCED_CT))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit.dcm")
    series = assemble_series([tmp_path / "implicit.dcm"])
    np.testing.assert_array_equal(series.volume.array, enhanced_ct.volume.array)
    assert series.volume.affine.tolist() == enhanced_ct.volume.affine.tolist()


def test_enhanced_mr_without_per_frame_positions_is_refused() -> None:
    with pytest.raises(VolumeAssemblyError, match="no per-frame functional groups") as caught:
        assemble_series([shared_data(*ENHANCED_MR)])
    assert caught.value.reason is AssemblyRejection.MISSING_GEOMETRY


def test_legacy_converted_multi_frame_equals_its_single_frame_images() -> None:
    single = assemble_series(files(*SMALL_CT, "image"))
    multi = assemble_series(files(*SMALL_CT, "image_legacy_enhanced"))
    np.testing.assert_array_equal(multi.volume.array, single.volume.array)
    assert multi.volume.affine.tolist() == single.volume.affine.tolist()
    assert [frame.frame_number for frame in multi.frames] == [1, 2, 3]


# Synthetic series: geometry of the patient positions


@pytest.mark.parametrize(
    "orientation", [AXIAL, HFP, FFS, SAGITTAL, OBLIQUE], ids=["hfs", "hfp", "ffs", "sag", "obl"]
)
def test_voxel_positions_equal_dicom_pixel_positions(
    tmp_path: Path, orientation: Orientation
) -> None:
    positions = positions_along(orientation, 6, spacing=2.5, origin=(-20.0, 35.0, 110.0))
    paths = write_series(tmp_path, positions, orientation=orientation)
    random.Random(3).shuffle(paths)
    series = assemble_series(paths)
    for k in range(6):
        header = series.headers[series.frames[k].sop_instance_uid]
        for row, column in ((0, 0), (31, 0), (0, 31), (20, 9)):
            np.testing.assert_allclose(
                series.volume.index_to_world((k, row, column)),
                dicom_pixel_position(header, row, column),
                atol=1e-4,
            )


def test_slices_hold_the_pixels_of_their_files(tmp_path: Path) -> None:
    positions = positions_along(FFS, 5, spacing=1.0)
    paths = write_series(tmp_path, positions, orientation=FFS)
    series = assemble_series(paths[::-1])
    for k, frame in enumerate(series.frames):
        np.testing.assert_array_equal(series.volume.array[k], stored_values(frame.path))


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0), rescale=(2.5, -100.0))
    series = assemble_series(paths)
    np.testing.assert_array_equal(series.volume.array[1], slice_pixels(1, 32, 32) * 2.5 - 100.0)


def test_scanner_jitter_within_the_tolerances_is_accepted(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    positions = positions_along(OBLIQUE, 40, spacing=1.25)

    def jitter(index: int, ds: Dataset) -> None:
        ds.ImagePositionPatient = [
            f"{value:.6f}" for value in np.add(positions[index], rng.uniform(-1e-3, 1e-3, 3))
        ]
        ds.ImageOrientationPatient = [
            f"{value:.7f}" for value in np.add(OBLIQUE, rng.uniform(-1e-4, 1e-4, 6))
        ]

    series = assemble_series(write_series(tmp_path, positions, orientation=OBLIQUE, edit=jitter))
    assert series.volume.spacing[0] == pytest.approx(1.25, abs=1e-4)
    np.testing.assert_allclose(series.volume.direction[2], OBLIQUE[:3], atol=1e-4)


def test_single_slice_takes_spacing_between_slices(tmp_path: Path) -> None:
    def spacing(_: int, ds: Dataset) -> None:
        ds.SpacingBetweenSlices = 3.0

    series = assemble_series(write_series(tmp_path, [(0.0, 0.0, 0.0)], edit=spacing))
    assert series.volume.spacing == (3.0, 0.5, 0.75)


def test_single_slice_falls_back_to_slice_thickness(tmp_path: Path) -> None:
    series = assemble_series(write_series(tmp_path, [(0.0, 0.0, 0.0)]))
    assert series.volume.spacing[0] == 2.0


# Synthetic series: refusals


def test_single_slice_without_thickness_is_refused(tmp_path: Path) -> None:
    def no_thickness(_: int, ds: Dataset) -> None:
        del ds.SliceThickness

    paths = write_series(tmp_path, [(0.0, 0.0, 0.0)], edit=no_thickness)
    with pytest.raises(VolumeAssemblyError, match="single slice"):
        assemble_series(paths)


def test_missing_slice_is_refused(tmp_path: Path) -> None:
    positions = positions_along(AXIAL, 10, spacing=3.0)
    paths = write_series(tmp_path, positions[:5] + positions[6:])
    with pytest.raises(
        VolumeAssemblyError,
        match=r"missing_slice: gap of 6\.000 mm between slice 5 \(slice004\.dcm\) and slice 6 "
        r"\(slice005\.dcm\) where spacing is 3\.000 mm \(1 slice\(s\) missing\)",
    ):
        assemble_series(paths)


def test_gantry_tilt_is_refused(tmp_path: Path) -> None:
    tilt = np.radians(12.0)
    tilted: Orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(-np.sin(tilt)))

    def gantry(_: int, ds: Dataset) -> None:
        ds.GantryDetectorTilt = 12.0

    # The table moves along z; the tilted image planes make the normal lean 12 degrees off z.
    positions = [(0.0, 0.0, 2.5 * i) for i in range(8)]
    paths = write_series(tmp_path, positions, orientation=tilted, edit=gantry)
    with pytest.raises(VolumeAssemblyError, match=r"gantry_tilt: .* leans 12\.00 degrees"):
        assemble_series(paths)


def test_duplicate_position_is_refused(tmp_path: Path) -> None:
    positions = positions_along(AXIAL, 5, spacing=2.0)
    paths = write_series(tmp_path, [*positions, positions[2]])
    with pytest.raises(VolumeAssemblyError, match=r"duplicate_position: .* both at 4\.000 mm"):
        assemble_series(paths)


def test_mixed_orientation_is_refused(tmp_path: Path) -> None:
    def localizer(index: int, ds: Dataset) -> None:
        if index == 3:
            ds.ImageOrientationPatient = list(SAGITTAL)

    paths = write_series(tmp_path, positions_along(AXIAL, 5, spacing=2.0), edit=localizer)
    with pytest.raises(VolumeAssemblyError, match=r"mixed_orientation: slice003\.dcm"):
        assemble_series(paths)


def test_mixed_size_is_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "a", positions_along(AXIAL, 4, spacing=2.0))
    other = slice_dataset((0.0, 0.0, 8.0), rows=48)
    other.save_as(tmp_path / "other.dcm", enforce_file_format=True)
    with pytest.raises(VolumeAssemblyError, match=r"mixed_size: other\.dcm is 48x32"):
        assemble_series([*paths, tmp_path / "other.dcm"])


def test_non_uniform_spacing_is_refused(tmp_path: Path) -> None:
    heights = [0.0, 2.0, 4.0, 6.0, 9.0, 11.0, 13.0]
    paths = write_series(tmp_path, [(0.0, 0.0, z) for z in heights])
    with pytest.raises(
        VolumeAssemblyError, match=r"non_uniform_spacing: step of 3\.000 mm between slice 4"
    ):
        assemble_series(paths)


def test_mixed_pixel_spacing_is_refused(tmp_path: Path) -> None:
    def zoomed(index: int, ds: Dataset) -> None:
        if index == 1:
            ds.PixelSpacing = [0.5, 0.8]

    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0), edit=zoomed)
    with pytest.raises(VolumeAssemblyError, match=r"^mixed_pixel_spacing: "):
        assemble_series(paths)


def test_mixed_frame_of_reference_is_refused(tmp_path: Path) -> None:
    def other_frame(index: int, ds: Dataset) -> None:
        if index == 2:
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"

    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0), edit=other_frame)
    with pytest.raises(VolumeAssemblyError, match=r"^mixed_frame_of_reference: "):
        assemble_series(paths)


def test_missing_position_is_refused(tmp_path: Path) -> None:
    def no_position(index: int, ds: Dataset) -> None:
        if index == 1:
            del ds.ImagePositionPatient

    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0), edit=no_position)
    with pytest.raises(VolumeAssemblyError, match=r"slice001\.dcm has no Image Position"):
        assemble_series(paths)


def test_skewed_orientation_is_refused(tmp_path: Path) -> None:
    def skewed(_: int, ds: Dataset) -> None:
        ds.ImageOrientationPatient = [1, 0, 0, 0.1, 1, 0]

    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0), edit=skewed)
    with pytest.raises(VolumeAssemblyError, match=r"^invalid_geometry: "):
        assemble_series(paths)


def test_the_same_instance_twice_is_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0))
    shutil.copy(paths[0], tmp_path / "copy.dcm")
    with pytest.raises(VolumeAssemblyError, match="same SOP Instance UID"):
        assemble_series([*paths, tmp_path / "copy.dcm"])


def test_no_files_is_refused() -> None:
    with pytest.raises(VolumeAssemblyError, match=r"^no_images: "):
        assemble_series([])


def test_a_file_that_is_not_dicom_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.dcm").write_text("not a DICOM file\n" * 20)
    with pytest.raises(VolumeAssemblyError, match=r"^unreadable_file: "):
        assemble_series([tmp_path / "notes.dcm"])


def test_an_instance_without_pixels_is_refused(tmp_path: Path) -> None:
    def no_pixels(_: int, ds: Dataset) -> None:
        del ds.PixelData

    paths = write_series(tmp_path, positions_along(AXIAL, 2, spacing=2.0), edit=no_pixels)
    with pytest.raises(VolumeAssemblyError, match=r"^not_an_image: "):
        assemble_series(paths)


def test_colour_images_are_refused(tmp_path: Path) -> None:
    def colour(_: int, ds: Dataset) -> None:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = bytes(32 * 32 * 3)

    paths = write_series(tmp_path, positions_along(AXIAL, 2, spacing=2.0), edit=colour)
    with pytest.raises(VolumeAssemblyError, match="only greyscale"):
        assemble_series(paths)


def test_truncated_pixel_data_is_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path, positions_along(AXIAL, 3, spacing=2.0))
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-100])
    with pytest.raises(VolumeAssemblyError, match=r"corrupt_pixel_data: slice001\.dcm"):
        assemble_series(paths)


def test_undecodable_compressed_frame_is_refused(tmp_path: Path) -> None:
    def garbage(_: int, ds: Dataset) -> None:
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(300)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless

    paths = write_series(tmp_path, positions_along(AXIAL, 2, spacing=2.0), edit=garbage)
    with pytest.raises(VolumeAssemblyError, match="cannot decode"):
        assemble_series(paths)


def test_undecodable_frame_in_worker_processes_is_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "native", positions_along(AXIAL, 16, spacing=2.0))
    compressed = copy_with_syntax(paths, tmp_path / "j2k", JPEG2000Lossless)
    ds = pydicom.dcmread(compressed[9])
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(300)])
    ds.save_as(compressed[9])
    with pytest.raises(VolumeAssemblyError, match=r"corrupt_pixel_data: slice009\.dcm: cannot"):
        assemble_series(compressed, decode_workers=2)


# Pixel values


@pytest.mark.parametrize(
    "syntax",
    [RLELossless, JPEGLSLossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian],
    ids=["rle", "jpeg_ls", "j2k", "deflate"],
)
def test_compressed_series_decode_to_the_uncompressed_values(tmp_path: Path, syntax: UID) -> None:
    paths = write_series(tmp_path / "native", positions_along(AXIAL, 4, spacing=2.0))
    expected = assemble_series(paths).volume.array
    compressed = copy_with_syntax(paths, tmp_path / "compressed", syntax)
    np.testing.assert_array_equal(assemble_series(compressed).volume.array, expected)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "J2K_pixelrep_mismatch.dcm",
        "693_J2KI.dcm",
        "JPGExtended.dcm",
        "JPEGLSNearLossless_16.dcm",
    ],
)
def test_pydicom_sample_images_decode_to_pydicom_values(tmp_path: Path, name: str) -> None:
    """Images shipped with pydicom (signed, big endian, lossy, codestream sign mismatch)."""
    shipped = get_testdata_file(name, download=False)
    assert shipped is not None, f"{name} is not shipped with this pydicom"
    path = Path(shipped)
    ds = pydicom.dcmread(path)
    if "ImagePositionPatient" not in ds:  # a few lack the image plane: give them one
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 1
        path = tmp_path / name
        ds.save_as(path)
    series = assemble_series([path], decode_workers=1)
    np.testing.assert_array_equal(series.volume.array[0], stored_values(path))


def test_signed_values_are_sign_extended_from_bits_stored(tmp_path: Path) -> None:
    def signed(_: int, ds: Dataset) -> None:
        ds.PixelRepresentation = 1
        # -5 in 12 bits is 0xFFB; the 4 unused high bits are left 0 (PS3.5 8.1.1).
        ds.PixelData = np.full((32, 32), 0x0FFB, dtype="<u2").tobytes()

    paths = write_series(tmp_path, positions_along(AXIAL, 2, spacing=2.0), edit=signed)
    assert set(np.unique(assemble_series(paths).volume.array)) == {-5.0 - 1024.0}


def test_bits_above_bits_stored_are_ignored(tmp_path: Path) -> None:
    def overlay_bits(_: int, ds: Dataset) -> None:
        ds.PixelData = np.full((32, 32), 0xF123, dtype="<u2").tobytes()

    paths = write_series(tmp_path, positions_along(AXIAL, 2, spacing=2.0), edit=overlay_bits)
    assert set(np.unique(assemble_series(paths).volume.array)) == {0x123 - 1024.0}
