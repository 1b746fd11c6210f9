"""seg_writer: SEG + TID 1500 SR from a pipeline result, on real source headers from ../shared/data.

Round trips read the written files back with highdicom; validity is dciodvfy's verdict.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom import Dataset

from pipelines.base import segment_volumes
from pipelines.codes import (
    LONG_AXIS,
    MAXIMUM,
    MILLILITER,
    MILLIMETER,
    VOLUME,
    review_recommended,
    segment_for,
)
from pipelines.result import Code, Evaluation, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume
from seg_writer import (
    AlgorithmInfo,
    NothingSegmentedError,
    ResultDocuments,
    ResultUids,
    SourceImage,
    WriterInputError,
    WriterOptions,
    write_results,
)
from tests.support.peers import shared_data
from tests.support.results import dciodvfy_errors

ALGORITHM = AlgorithmInfo("ct_basic", "1.2.3")
OPTIONS = WriterOptions(software_versions="0.1.0")
PATIENT_AND_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
)


# --- source images -------------------------------------------------------------------------


def read_headers(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.glob("*.dcm"))]


def sort_by_position(headers: Sequence[Dataset]) -> list[Dataset]:
    """Slices in ascending order along the slice normal (row x column direction)."""
    return sorted(headers, key=lambda header: float(normal(header) @ position(header)))


def normal(header: Dataset) -> npt.NDArray[np.float64]:
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float)
    return np.cross(cosines[:3], cosines[3:])


def position(header: Dataset) -> npt.NDArray[np.float64]:
    return np.asarray(header.ImagePositionPatient, dtype=float)


def volume_of(headers: Sequence[Dataset], shape: tuple[int, int, int]) -> ImageVolume:
    """The grid of position-sorted single-frame headers (for segment_volumes)."""
    first, last = headers[0], headers[-1]
    cosines = np.asarray(first.ImageOrientationPatient, dtype=float)
    slice_spacing = float(normal(first) @ (position(last) - position(first))) / (len(headers) - 1)
    row_spacing, column_spacing = (float(value) for value in first.PixelSpacing)
    return ImageVolume(
        np.zeros(shape, dtype=np.uint8),
        (float(position(first)[0]), float(position(first)[1]), float(position(first)[2])),
        (slice_spacing, row_spacing, column_spacing),
        (vector(normal(first)), vector(cosines[3:]), vector(cosines[:3])),
    )


def vector(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    x, y, z = (float(value) for value in values)
    return x, y, z


@pytest.fixture(scope="module")
def mr_headers() -> list[Dataset]:
    """35 sagittal MR slices (256x256), sorted along the normal."""
    return sort_by_position(read_headers(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS")))


@pytest.fixture(scope="module")
def ct_headers() -> list[Dataset]:
    """4 CT slices (16x16), irregularly spaced, sorted along the normal."""
    return sort_by_position(
        read_headers(shared_data("seg_sr", "highdicom_ct2", "image_pydicom_CT2"))
    )


@pytest.fixture(scope="module")
def enhanced_ct() -> Dataset:
    """One Enhanced CT instance with 2 frames of 512x512."""
    path = shared_data("ct", "pydicom_data_enhanced_ct", "eCT_Supplemental.dcm")
    return pydicom.dcmread(path, stop_before_pixels=True)


# --- label maps and results ----------------------------------------------------------------

SEGMENTS = (segment_for("body", 1), segment_for("bone", 2), segment_for("lung_left", 3))


def mr_label_map(shape: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    """A sphere (1, slices 11-23) and two boxes (2: 3-9, 3: 24-30); slices 0-2, 10 and 31-34
    hold nothing."""
    depth, rows, columns = shape
    label_map = np.zeros(shape, dtype=np.uint8)
    k, i, j = np.ogrid[:depth, :rows, :columns]
    # Slices are 4.8 mm apart, pixels 1.016 mm: a sphere of radius ~30 mm.
    sphere = ((k - 17) * 4.8) ** 2 + ((i - 128) * 1.016) ** 2 + ((j - 128) * 1.016) ** 2 < 30**2
    label_map[sphere] = 1
    label_map[3:10, 20:60, 30:90] = 2
    label_map[24:31, 190:230, 150:200] = 3
    return label_map


def result_for(
    label_map: npt.NDArray[np.integer],
    volume: ImageVolume,
    segments: tuple[Segment, ...] = SEGMENTS,
) -> PipelineResult:
    return PipelineResult(label_map, segments, segment_volumes(label_map, volume, segments))


@pytest.fixture(scope="module")
def mr_result(mr_headers: list[Dataset]) -> PipelineResult:
    shape = (len(mr_headers), int(mr_headers[0].Rows), int(mr_headers[0].Columns))
    label_map = mr_label_map(shape)
    return result_for(label_map, volume_of(mr_headers, shape))


@pytest.fixture(scope="module")
def mr_documents(mr_headers: list[Dataset], mr_result: PipelineResult) -> ResultDocuments:
    return write_results([SourceImage(h) for h in mr_headers], mr_result, ALGORITHM, OPTIONS)


@pytest.fixture(scope="module")
def mr_files(mr_documents: ResultDocuments, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mr")
    mr_documents.segmentation.save_as(folder / "seg.dcm", enforce_file_format=True)
    mr_documents.report.save_as(folder / "sr.dcm", enforce_file_format=True)
    return folder


# --- reading back --------------------------------------------------------------------------


def labels_back(
    seg: Dataset, headers: Sequence[Dataset], numbers: dict[int, int]
) -> npt.NDArray[np.int64]:
    """The label map of single-frame `headers` from a SEG read back, in pipeline labels."""
    combined = as_segmentation(seg).get_pixels_by_source_instance(
        [str(h.SOPInstanceUID) for h in headers],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    return relabel(combined, numbers)


def relabel(combined: npt.NDArray[np.integer], numbers: dict[int, int]) -> npt.NDArray[np.int64]:
    lookup = np.zeros(max(numbers.values()) + 1, dtype=np.int64)
    for label, number in numbers.items():
        lookup[number] = label
    restored: npt.NDArray[np.int64] = lookup[combined]
    return restored


def volume_groups(
    report: Dataset,
) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    return list(measurement_report(report).get_volumetric_roi_measurement_groups())


def as_segmentation(dataset: Dataset) -> hd.seg.Segmentation:
    assert isinstance(dataset, hd.seg.Segmentation)
    return dataset


def measurement_report(report: Dataset) -> hd.sr.MeasurementReport:
    content = hd.sr.Comprehensive3DSR.from_dataset(report).content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def segment_reference(
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
) -> hd.sr.ReferencedSegment:
    reference = group.referenced_segment
    assert isinstance(reference, hd.sr.ReferencedSegment)
    return reference


def volume_ml(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> float:
    """The group's one Volume, which must be in ml."""
    volume = hd.sr.CodedConcept(VOLUME.value, VOLUME.scheme_designator, VOLUME.meaning)
    (measurement,) = group.get_measurements(name=volume)
    assert measurement.unit == hd.sr.CodedConcept("ml", "UCUM", "milliliter")
    return float(measurement.value)


def referenced_instances(seg: Dataset) -> set[str]:
    return {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }


def labelled_instances(headers: Sequence[Dataset], label_map: npt.NDArray[np.integer]) -> set[str]:
    """SOP Instance UIDs of the single-frame sources whose slice holds a label."""
    return {
        str(header.SOPInstanceUID)
        for header, label_slice in zip(headers, label_map, strict=True)
        if label_slice.any()
    }


def derivation_instances(seg: Dataset) -> set[str]:
    return {
        str(source.ReferencedSOPInstanceUID)
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for source in derivation.SourceImageSequence
    }


# --- validity ------------------------------------------------------------------------------


def test_seg_has_no_dciodvfy_errors(mr_files: Path) -> None:
    assert dciodvfy_errors(mr_files / "seg.dcm") == []


def test_sr_has_no_dciodvfy_errors(mr_files: Path) -> None:
    assert dciodvfy_errors(mr_files / "sr.dcm") == []


@pytest.fixture(scope="module")
def enhanced_ct_files(enhanced_ct: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SEG and SR of the Enhanced CT, its two frames given in reverse order."""
    label_map = np.zeros((2, 512, 512), dtype=np.uint8)
    label_map[:, 100:200, 150:300] = 1
    documents = write_results(
        [SourceImage(enhanced_ct, 2), SourceImage(enhanced_ct, 1)],
        enhanced_ct_result(label_map),
        ALGORITHM,
        OPTIONS,
    )
    folder = tmp_path_factory.mktemp("enhanced_ct")
    documents.segmentation.save_as(folder / "seg.dcm", enforce_file_format=True)
    documents.report.save_as(folder / "sr.dcm", enforce_file_format=True)
    return folder


def test_multi_frame_seg_has_no_dciodvfy_errors(enhanced_ct_files: Path) -> None:
    assert dciodvfy_errors(enhanced_ct_files / "seg.dcm") == []


def test_multi_frame_sr_has_no_dciodvfy_errors(enhanced_ct_files: Path) -> None:
    assert dciodvfy_errors(enhanced_ct_files / "sr.dcm") == []


def enhanced_ct_result(label_map: npt.NDArray[np.uint8]) -> PipelineResult:
    # Grid of eCT_Supplemental: frames 10 mm apart along z, 0.489 mm pixels.
    grid = ImageVolume(
        np.zeros(label_map.shape), (0.0, 0.0, 0.0), (10.0, 0.488281, 0.488281),
        ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    )  # fmt: skip
    return result_for(label_map, grid, SEGMENTS[:1])


# --- references ----------------------------------------------------------------------------


def test_seg_references_exactly_the_instances_with_frames(
    mr_documents: ResultDocuments, mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    expected = labelled_instances(mr_headers, mr_result.label_map)
    assert len(expected) == 27  # slices 3..9 and 11..30
    assert referenced_instances(mr_documents.segmentation) == expected


def test_seg_frames_derive_from_the_instances_with_frames(
    mr_documents: ResultDocuments, mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    expected = labelled_instances(mr_headers, mr_result.label_map)
    assert derivation_instances(mr_documents.segmentation) == expected


def test_seg_is_in_the_sources_frame_of_reference(
    mr_documents: ResultDocuments, mr_headers: list[Dataset]
) -> None:
    assert mr_documents.segmentation.FrameOfReferenceUID == mr_headers[0].FrameOfReferenceUID


def test_seg_references_only_the_source_series(
    mr_documents: ResultDocuments, mr_headers: list[Dataset]
) -> None:
    series = [item.SeriesInstanceUID for item in mr_documents.segmentation.ReferencedSeriesSequence]
    assert series == [mr_headers[0].SeriesInstanceUID]


def test_multi_frame_seg_frames_derive_from_their_source_frames(enhanced_ct: Dataset) -> None:
    label_map = np.zeros((2, 512, 512), dtype=np.uint8)
    label_map[0, 10:20, 10:20] = 1  # label-map slice 0 is source frame 2
    documents = write_results(
        [SourceImage(enhanced_ct, 2), SourceImage(enhanced_ct, 1)],
        enhanced_ct_result(label_map),
        ALGORITHM,
        OPTIONS,
    )
    (frame,) = documents.segmentation.PerFrameFunctionalGroupsSequence
    (source,) = frame.DerivationImageSequence[0].SourceImageSequence
    referenced = (source.ReferencedSOPInstanceUID, source.ReferencedFrameNumber)
    assert referenced == (enhanced_ct.SOPInstanceUID, 2)


# --- round trips ---------------------------------------------------------------------------


def test_seg_read_back_gives_the_label_map(
    mr_files: Path,
    mr_documents: ResultDocuments,
    mr_headers: list[Dataset],
    mr_result: PipelineResult,
) -> None:
    seg = hd.seg.segread(mr_files / "seg.dcm")
    restored = labels_back(seg, mr_headers, dict(mr_documents.segment_numbers))
    np.testing.assert_array_equal(restored, mr_result.label_map)


def test_seg_of_shuffled_sources_read_back_gives_the_label_map(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    order = list(range(len(mr_headers)))
    random.Random(7).shuffle(order)
    shuffled = [mr_headers[k] for k in order]
    result = replace(mr_result, label_map=mr_result.label_map[order])
    documents = write_results([SourceImage(h) for h in shuffled], result, ALGORITHM, OPTIONS)
    restored = labels_back(documents.segmentation, shuffled, dict(documents.segment_numbers))
    np.testing.assert_array_equal(restored, result.label_map)


def test_seg_of_irregularly_spaced_ct_read_back_gives_the_label_map(
    ct_headers: list[Dataset],
) -> None:
    label_map = np.zeros((4, 16, 16), dtype=np.uint8)
    label_map[0, 2:6, 3:9] = 1
    label_map[1:3, 8:14, 4:12] = 2
    result = result_for(label_map, volume_of(ct_headers, label_map.shape), SEGMENTS[:2])
    documents = write_results([SourceImage(h) for h in ct_headers], result, ALGORITHM, OPTIONS)
    restored = labels_back(documents.segmentation, ct_headers, dict(documents.segment_numbers))
    np.testing.assert_array_equal(restored, label_map)


def test_multi_frame_seg_of_shuffled_frames_read_back_gives_the_label_map(
    enhanced_ct: Dataset,
) -> None:
    label_map = np.zeros((2, 512, 512), dtype=np.uint8)
    label_map[0, 100:200, 150:300] = 1  # source frame 2
    label_map[1, 300:320, 40:90] = 1  # source frame 1
    documents = write_results(
        [SourceImage(enhanced_ct, 2), SourceImage(enhanced_ct, 1)],
        enhanced_ct_result(label_map),
        ALGORITHM,
        OPTIONS,
    )
    by_frame = as_segmentation(documents.segmentation).get_pixels_by_source_frame(
        enhanced_ct.SOPInstanceUID, source_frame_numbers=[2, 1], combine_segments=True
    )
    np.testing.assert_array_equal(by_frame, label_map)


def test_non_consecutive_labels_read_back_as_their_labels(mr_headers: list[Dataset]) -> None:
    shape = (len(mr_headers), int(mr_headers[0].Rows), int(mr_headers[0].Columns))
    label_map = np.zeros(shape, dtype=np.int16)
    label_map[5:9, 10:50, 10:50] = 4
    label_map[12:20, 100:150, 60:70] = 9
    segments = (segment_for("bone", 4), segment_for("airway", 9))
    result = result_for(label_map, volume_of(mr_headers, shape), segments)
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    restored = labels_back(documents.segmentation, mr_headers, dict(documents.segment_numbers))
    np.testing.assert_array_equal(restored, label_map)


def test_seg_of_one_labelled_slice_states_no_slice_spacing(ct_headers: list[Dataset]) -> None:
    label_map = np.zeros((4, 16, 16), dtype=np.uint8)
    label_map[2, 2:6, 3:9] = 1
    result = result_for(label_map, volume_of(ct_headers, label_map.shape), SEGMENTS[:1])
    documents = write_results([SourceImage(h) for h in ct_headers], result, ALGORITHM, OPTIONS)
    shared = documents.segmentation.SharedFunctionalGroupsSequence[0]
    assert "SpacingBetweenSlices" not in shared.PixelMeasuresSequence[0]


# --- segment descriptions ------------------------------------------------------------------


def test_segments_are_coded_from_the_code_table(mr_documents: ResultDocuments) -> None:
    described = [
        (
            str(item.SegmentLabel),
            item.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
            item.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator,
        )
        for item in mr_documents.segmentation.SegmentSequence
    ]
    expected = [(s.description, s.category.value, s.type.value, "SCT") for s in SEGMENTS]
    assert described == expected


def test_segments_carry_their_recommended_display_colour(mr_documents: ResultDocuments) -> None:
    colours = [
        hd.color.CIELabColor.from_dicom_value(tuple(item.RecommendedDisplayCIELabValue)).to_rgb()
        for item in mr_documents.segmentation.SegmentSequence
    ]
    expected = [segment.color for segment in SEGMENTS]
    assert [tuple(round(c) for c in colour) for colour in colours] == expected


def test_seg_identifies_the_algorithm(mr_documents: ResultDocuments) -> None:
    identified = {
        (
            item.SegmentAlgorithmType,
            item.SegmentAlgorithmName,
            item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName,
            item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion,
            item.SegmentationAlgorithmIdentificationSequence[0]
            .AlgorithmFamilyCodeSequence[0]
            .CodeValue,
        )
        for item in mr_documents.segmentation.SegmentSequence
    }
    assert identified == {("AUTOMATIC", "ct_basic", "ct_basic", "1.2.3", "123110")}


def test_seg_series_comes_from_the_options(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    options = WriterOptions(seg_series_number=42, seg_series_description="organs by ct_basic")
    documents = write_results([SourceImage(h) for h in mr_headers], mr_result, ALGORITHM, options)
    seg = documents.segmentation
    assert (seg.SeriesNumber, seg.SeriesDescription) == (42, "organs by ct_basic")


def test_sr_series_comes_from_the_options(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    options = WriterOptions(sr_series_number=43, sr_series_description="volumes by ct_basic")
    documents = write_results([SourceImage(h) for h in mr_headers], mr_result, ALGORITHM, options)
    report = documents.report
    assert (report.SeriesNumber, report.SeriesDescription) == (43, "volumes by ct_basic")


@pytest.mark.parametrize("document", ["segmentation", "report"])
def test_patient_and_study_attributes_are_the_sources(
    mr_documents: ResultDocuments, mr_headers: list[Dataset], document: str
) -> None:
    written = getattr(mr_documents, document)
    copied = {keyword: written.get(keyword) for keyword in PATIENT_AND_STUDY}
    assert copied == {keyword: mr_headers[0].get(keyword) for keyword in PATIENT_AND_STUDY}


# --- the measurement report ----------------------------------------------------------------


def test_sr_volumes_are_the_measured_volumes(
    mr_documents: ResultDocuments, mr_result: PipelineResult
) -> None:
    reported = {
        group.tracking_identifier: volume_ml(group) for group in volume_groups(mr_documents.report)
    }
    measured = {
        mr_result.segment(m.segment_label).description: m.value
        for m in mr_result.measurements
        if m.segment_label is not None
    }
    assert reported == pytest.approx(measured)


def test_sr_volumes_equal_the_seg_mask_volumes(
    mr_files: Path, mr_headers: list[Dataset], mr_documents: ResultDocuments
) -> None:
    seg = hd.seg.segread(mr_files / "seg.dcm")
    grid = volume_of(mr_headers, (len(mr_headers), 256, 256))
    voxel_ml = grid.voxel_volume_mm3 / 1000.0
    reported, masked = {}, {}
    for group in volume_groups(mr_documents.report):
        (number,) = segment_reference(group).referenced_segment_numbers or []
        mask = seg.get_pixels_by_source_instance(
            [str(h.SOPInstanceUID) for h in mr_headers],
            segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )
        reported[number] = volume_ml(group)
        masked[number] = int(mask.sum()) * voxel_ml
    assert reported == pytest.approx(masked, rel=0.01)


def test_sr_groups_reference_their_seg_segments(mr_documents: ResultDocuments) -> None:
    seg = mr_documents.segmentation
    references = {
        group.tracking_identifier: (
            segment_reference(group).referenced_sop_instance_uid,
            segment_reference(group).referenced_segment_numbers,
        )
        for group in volume_groups(mr_documents.report)
    }
    assert references == {
        str(item.SegmentLabel): (seg.SOPInstanceUID, [int(item.SegmentNumber)])
        for item in seg.SegmentSequence
    }


def test_sr_groups_share_the_seg_tracking_uids(mr_documents: ResultDocuments) -> None:
    reported = {group.tracking_uid for group in volume_groups(mr_documents.report)}
    segmented = {str(item.TrackingUID) for item in mr_documents.segmentation.SegmentSequence}
    assert reported == segmented


def test_sr_groups_reference_the_source_series(
    mr_documents: ResultDocuments, mr_headers: list[Dataset]
) -> None:
    series = {
        getattr(segment_reference(group).source_series_for_segmentation, "value", None)
        for group in volume_groups(mr_documents.report)
    }
    assert series == {mr_headers[0].SeriesInstanceUID}


def test_sr_evidence_is_the_seg_and_every_source(
    mr_documents: ResultDocuments, mr_headers: list[Dataset]
) -> None:
    evidence = {
        str(instance.ReferencedSOPInstanceUID)
        for study in mr_documents.report.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    expected = {str(h.SOPInstanceUID) for h in mr_headers} | {
        mr_documents.segmentation.SOPInstanceUID
    }
    assert evidence == expected


def test_sr_is_an_imaging_measurement_report(mr_documents: ResultDocuments) -> None:
    sr = hd.sr.Comprehensive3DSR.from_dataset(mr_documents.report)
    assert sr.content[0].name == hd.sr.CodedConcept("126000", "DCM", "Imaging Measurement Report")


def test_sr_observer_is_the_node_as_a_device(mr_documents: ResultDocuments) -> None:
    (observer,) = measurement_report(mr_documents.report).get_observer_contexts()
    assert observer.observer_type == hd.sr.CodedConcept("121007", "DCM", "Device")


def test_sr_identifies_the_algorithm(mr_documents: ResultDocuments) -> None:
    identified = {
        tuple(
            (item.name.meaning, item.value)
            for item in group[0].ContentSequence
            if item.name.value in ("111001", "111003")
        )
        for group in volume_groups(mr_documents.report)
    }
    assert identified == {(("Algorithm Name", "ct_basic"), ("Algorithm Version", "1.2.3"))}


def test_measurement_without_segment_goes_to_a_group_without_roi(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    total = Measurement(VOLUME, 1234.5, MILLILITER)
    result = replace(mr_result, measurements=(*mr_result.measurements, total))
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    (group,) = measurement_report(documents.report).get_image_measurement_groups()
    assert [float(m.value) for m in group.get_measurements()] == [1234.5]


# --- laterality, derived measurements and evaluations --------------------------------------

SIDED = (
    segment_for("kidney_right", 1),
    segment_for("liver_tumor", 2),
    segment_for("kidney_left", 3),
)
REVIEW = ("Recommendation", "Review of segmentation recommended")


def evaluated(items: Sequence[Dataset]) -> list[tuple[str, str]]:
    """(concept name, coded value) meanings of SR CODE content items."""
    return [
        (
            str(item.ConceptNameCodeSequence[0].CodeMeaning),
            str(item.ConceptCodeSequence[0].CodeMeaning),
        )
        for item in items
    ]


@pytest.fixture(scope="module")
def sided_result(mr_result: PipelineResult) -> PipelineResult:
    """The MR label map as right kidney, liver tumor and left kidney; the right kidney and the
    whole result marked for review; the tumor's largest volume and long axis."""
    derived = (
        Measurement(VOLUME, 3.5, MILLILITER, segment_label=2, derivation=MAXIMUM),
        Measurement(LONG_AXIS, 12.0, MILLIMETER, segment_label=2, derivation=MAXIMUM),
    )
    return replace(
        mr_result,
        segments=SIDED,
        measurements=(*mr_result.measurements, *derived),
        evaluations=(review_recommended(1), review_recommended()),
    )


@pytest.fixture(scope="module")
def sided_files(
    mr_headers: list[Dataset],
    sided_result: PipelineResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    documents = write_results(
        [SourceImage(h) for h in mr_headers], sided_result, ALGORITHM, OPTIONS
    )
    folder = tmp_path_factory.mktemp("sided")
    documents.segmentation.save_as(folder / "seg.dcm", enforce_file_format=True)
    documents.report.save_as(folder / "sr.dcm", enforce_file_format=True)
    return folder


def test_seg_with_laterality_has_no_dciodvfy_errors(sided_files: Path) -> None:
    assert dciodvfy_errors(sided_files / "seg.dcm") == []


def test_sr_with_laterality_and_evaluations_has_no_dciodvfy_errors(sided_files: Path) -> None:
    assert dciodvfy_errors(sided_files / "sr.dcm") == []


def test_seg_types_carry_their_laterality(sided_files: Path) -> None:
    seg = pydicom.dcmread(sided_files / "seg.dcm")
    modifiers = {
        str(item.SegmentLabel): [
            (m.CodeValue, m.CodeMeaning)
            for m in item.get("SegmentedPropertyTypeModifierCodeSequence", [])
        ]
        for item in seg.SegmentSequence
    }
    assert modifiers == {
        "Right kidney": [("24028007", "Right")],
        "Liver tumor": [],
        "Left kidney": [("7771000", "Left")],
    }


def test_sr_finding_sites_carry_their_laterality(sided_files: Path) -> None:
    sites = {
        group.tracking_identifier: [
            (site.value.meaning, site.laterality and site.laterality.meaning)
            for site in group.finding_sites
        ]
        for group in volume_groups(pydicom.dcmread(sided_files / "sr.dcm"))
    }
    assert sites == {
        "Right kidney": [("Kidney", "Right")],
        "Liver tumor": [("Liver", None)],
        "Left kidney": [("Kidney", "Left")],
    }


def test_sr_segment_evaluations_are_in_their_group(sided_files: Path) -> None:
    evaluations = {
        group.tracking_identifier: [
            pair
            for pair in evaluated([e[0] for e in group.get_qualitative_evaluations()])
            if pair[0] == "Recommendation"
        ]
        for group in volume_groups(pydicom.dcmread(sided_files / "sr.dcm"))
    }
    assert evaluations == {"Right kidney": [REVIEW], "Liver tumor": [], "Left kidney": []}


def test_sr_document_evaluations_are_the_reports_qualitative_evaluations(
    sided_files: Path,
) -> None:
    report = pydicom.dcmread(sided_files / "sr.dcm")
    (container,) = [
        item
        for item in report.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "C0034375"
    ]
    assert evaluated(container.ContentSequence) == [REVIEW]


def test_sr_identifies_the_local_coding_scheme(sided_files: Path) -> None:
    schemes = pydicom.dcmread(sided_files / "sr.dcm").CodingSchemeIdentificationSequence
    named = [(item.CodingSchemeDesignator, item.CodingSchemeName) for item in schemes]
    assert named == [("99DCMNODE", "dicom-node local codes")]


def test_sr_derived_measurements_carry_their_derivation(sided_files: Path) -> None:
    (tumor,) = [
        group
        for group in volume_groups(pydicom.dcmread(sided_files / "sr.dcm"))
        if group.tracking_identifier == "Liver tumor"
    ]
    derived = {
        (m.name.meaning, float(m.value)): m.derivation and m.derivation.meaning
        for m in tumor.get_measurements()
    }
    assert {key: value for key, value in derived.items() if value} == {
        ("Volume", 3.5): "Maximum",
        ("Long axis", 12.0): "Maximum",
    }


def test_evaluation_of_an_empty_segment_stays_in_the_sr_without_roi(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = replace(with_empty_airway(mr_result), evaluations=(review_recommended(4),))
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    (group,) = measurement_report(documents.report).get_image_measurement_groups()
    found = evaluated([e[0] for e in group.get_qualitative_evaluations()])
    assert (group.tracking_identifier, REVIEW in found) == ("Airway", True)


def test_derived_volume_is_not_the_segment_volume(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    largest = replace(mr_result.measurements[0], derivation=MAXIMUM)
    result = replace(mr_result, measurements=(largest, *mr_result.measurements[1:]))
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(WriterInputError, match="'body' has voxels but no Volume measurement"):
        write_results(sources, result, ALGORITHM, OPTIONS)


def test_evaluation_of_an_unknown_segment_raises(mr_result: PipelineResult) -> None:
    stray = Evaluation(review_recommended().name, review_recommended().value, segment_label=7)
    with pytest.raises(ValueError, match="segment label 7, which is not in the segment table"):
        replace(mr_result, evaluations=(stray,))


# --- empty segments ------------------------------------------------------------------------


def with_empty_airway(result: PipelineResult) -> PipelineResult:
    """The MR result with a fourth segment, label 4 "airway", that has no voxel."""
    return replace(result, segments=(*result.segments, segment_for("airway", 4)))


def test_empty_segment_is_left_out_of_the_seg(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = with_empty_airway(mr_result)
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    labels = [str(item.SegmentLabel) for item in documents.segmentation.SegmentSequence]
    assert labels == ["Body", "Bone", "Left lung"]


def test_empty_segment_is_left_out_of_the_sr(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = with_empty_airway(mr_result)
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    tracked = [group.tracking_identifier for group in volume_groups(documents.report)]
    assert tracked == ["Body", "Bone", "Left lung"]


def test_empty_segment_has_no_segment_number(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = with_empty_airway(mr_result)
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    assert dict(documents.segment_numbers) == {1: 1, 2: 2, 3: 3}


def test_measurement_of_an_empty_segment_stays_in_the_sr_without_roi(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    zero = Measurement(VOLUME, 0.0, MILLILITER, segment_label=4)
    result = replace(with_empty_airway(mr_result), measurements=(*mr_result.measurements, zero))
    documents = write_results([SourceImage(h) for h in mr_headers], result, ALGORITHM, OPTIONS)
    (group,) = measurement_report(documents.report).get_image_measurement_groups()
    assert (group.tracking_identifier, group.finding_type) == (
        "Airway",
        hd.sr.CodedConcept("89187006", "SCT", "Airway structure"),
    )


def test_nothing_segmented_raises(mr_headers: list[Dataset], mr_result: PipelineResult) -> None:
    result = PipelineResult(np.zeros_like(mr_result.label_map), SEGMENTS)
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(NothingSegmentedError, match="no segment has a labelled voxel"):
        write_results(sources, result, ALGORITHM, OPTIONS)


# --- invalid input -------------------------------------------------------------------------


def test_fewer_sources_than_slices_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    sources = [SourceImage(h) for h in mr_headers[:-1]]
    with pytest.raises(WriterInputError, match="35 slices but 34 source images"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_slice_size_other_than_the_sources_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = replace(mr_result, label_map=mr_result.label_map[:, :128, :])
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(WriterInputError, match="is 256x256 but the label map slices are 128x256"):
        write_results(sources, result, ALGORITHM, OPTIONS)


def test_sources_from_two_series_raise(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    other = copy_with(mr_headers[3], SeriesInstanceUID="1.2.3.4")
    sources = [SourceImage(h) for h in [*mr_headers[:3], other, *mr_headers[4:]]]
    with pytest.raises(WriterInputError, match="2 different SeriesInstanceUID values"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_sources_in_two_frames_of_reference_raise(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    other = copy_with(mr_headers[3], FrameOfReferenceUID="1.2.3.4")
    sources = [SourceImage(h) for h in [*mr_headers[:3], other, *mr_headers[4:]]]
    with pytest.raises(WriterInputError, match="2 different FrameOfReferenceUID values"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_source_without_frame_of_reference_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    other = copy_with(mr_headers[3])
    del other.FrameOfReferenceUID
    sources = [SourceImage(h) for h in [*mr_headers[:3], other, *mr_headers[4:]]]
    with pytest.raises(WriterInputError, match="a source image has no FrameOfReferenceUID"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_source_without_slice_thickness_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    other = copy_with(mr_headers[3])
    del other.SliceThickness
    sources = [SourceImage(h) for h in [*mr_headers[:3], other, *mr_headers[4:]]]
    with pytest.raises(WriterInputError, match="has no SliceThickness"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_the_same_instance_twice_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    sources = [SourceImage(h) for h in [mr_headers[0], *mr_headers[:-1]]]
    with pytest.raises(WriterInputError, match="appears more than once"):
        write_results(sources, mr_result, ALGORITHM, OPTIONS)


def test_multi_frame_source_without_frame_numbers_raises(enhanced_ct: Dataset) -> None:
    label_map = np.ones((1, 512, 512), dtype=np.uint8)
    with pytest.raises(WriterInputError, match="give each of its slices as SourceImage"):
        write_results([SourceImage(enhanced_ct)], enhanced_ct_result(label_map), ALGORITHM, OPTIONS)


def test_frame_number_beyond_the_frames_raises(enhanced_ct: Dataset) -> None:
    label_map = np.ones((1, 512, 512), dtype=np.uint8)
    sources = [SourceImage(enhanced_ct, 3)]
    with pytest.raises(WriterInputError, match=r"frame numbers must lie in 1\.\.2"):
        write_results(sources, enhanced_ct_result(label_map), ALGORITHM, OPTIONS)


def test_segment_without_volume_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    result = replace(mr_result, measurements=mr_result.measurements[1:])
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(WriterInputError, match="'body' has voxels but no Volume measurement"):
        write_results(sources, result, ALGORITHM, OPTIONS)


def test_measurement_of_an_unknown_segment_raises(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    stray = Measurement(VOLUME, 1.0, MILLILITER, segment_label=7)
    result = replace(mr_result, measurements=(*mr_result.measurements, stray))
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(WriterInputError, match="segment label 7, which is not in the segment"):
        write_results(sources, result, ALGORITHM, OPTIONS)


def test_volume_in_other_units_raises(mr_headers: list[Dataset], mr_result: PipelineResult) -> None:
    litres = Measurement(VOLUME, 0.1, Code("l", "UCUM", "liter"), segment_label=1)
    result = replace(mr_result, measurements=(*mr_result.measurements, litres))
    sources = [SourceImage(h) for h in mr_headers]
    with pytest.raises(WriterInputError, match="a volume must be in UCUM ml or mm3"):
        write_results(sources, result, ALGORITHM, OPTIONS)


def copy_with(header: Dataset, **attributes: str) -> Dataset:
    copied = copy.deepcopy(header)
    for keyword, value in attributes.items():
        setattr(copied, keyword, value)
    return copied


# --- UIDs ----------------------------------------------------------------------------------

FIXED_UIDS = ResultUids("2.25.1", "2.25.2", "2.25.3", "2.25.4")


def test_given_uids_name_the_documents(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    sources = [SourceImage(h) for h in mr_headers]
    documents = write_results(sources, mr_result, ALGORITHM, OPTIONS, uids=FIXED_UIDS)
    seg, report = documents.segmentation, documents.report
    named = (
        seg.SeriesInstanceUID,
        seg.SOPInstanceUID,
        report.SeriesInstanceUID,
        report.SOPInstanceUID,
    )
    assert named == ("2.25.1", "2.25.2", "2.25.3", "2.25.4")


def test_given_uids_repeat_the_tracking_uids(
    mr_headers: list[Dataset], mr_result: PipelineResult
) -> None:
    sources = [SourceImage(h) for h in mr_headers]
    runs = [write_results(sources, mr_result, ALGORITHM, OPTIONS, uids=FIXED_UIDS) for _ in "ab"]
    tracking = [[item.TrackingUID for item in run.segmentation.SegmentSequence] for run in runs]
    assert tracking[0] == tracking[1]


def test_invalid_result_uid_raises() -> None:
    with pytest.raises(ValueError, match="report_instance is not a valid UID"):
        ResultUids("2.25.1", "2.25.2", "2.25.3", "2.25.04")


# --- options -------------------------------------------------------------------------------


def test_series_description_longer_than_a_long_string_raises() -> None:
    with pytest.raises(ValueError, match="seg_series_description must be a DICOM LO value"):
        WriterOptions(seg_series_description="x" * 65)


def test_same_series_number_for_seg_and_sr_raises() -> None:
    with pytest.raises(ValueError, match="different series numbers"):
        WriterOptions(seg_series_number=7, sr_series_number=7)


def test_algorithm_without_version_raises() -> None:
    with pytest.raises(ValueError, match="needs a name and a version"):
        AlgorithmInfo("ct_basic", " ")
