"""The TID 1500 Measurement Report (PS3.16 A.35.1) of a pipeline result, as a Comprehensive 3D SR.

Content tree, as highdicom's templates build it:

- language, observer context (TID 1001/1004: the node and algorithm as device observer), procedure
  reported (the source's ProcedureCodeSequence, else SCT 363679005 "Imaging procedure");
- per written segment one TID 1411 volumetric ROI group: tracking identifier (the SEG segment's
  TrackingID and TrackingUID), a reference to that SEG segment and the source series, finding
  category and type from the segment table, finding site from its anatomic region (else, for a
  paired structure, its type) with the segment's laterality (TID 1419 row 6: Laterality, CID
  244), algorithm identification (TID 4019), the segment's measurements (TID 300, with their
  derivation, CID 3488) and its qualitative evaluations (CODE items);
- measurements and evaluations of an empty segment (which the SEG leaves out) in a TID 1501
  group carrying that segment's identification but no ROI, and measurements of no segment in one
  TID 1501 group;
- evaluations of no segment in TID 1500's own "Qualitative Evaluations" container (row 10,
  UMLS C0034375), which highdicom's MeasurementReport does not build, so it is added here.

Evidence is the SEG and every source instance. Codes of a local coding scheme (designator
"99...") are named in the Coding Scheme Identification Sequence (PS3.3 C.12.1.1.7).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom import Dataset
from pydicom.sr.codedict import codes

from pipelines.codes import LOCAL_SCHEME, LOCAL_SCHEME_NAME
from pipelines.result import Code, Evaluation, Measurement, PipelineResult, Segment
from seg_writer.coding import coded
from seg_writer.errors import WriterInputError
from seg_writer.options import AlgorithmInfo, WriterOptions
from seg_writer.segmentation import WrittenSegment
from seg_writer.sources import patient_name_copied_verbatim
from seg_writer.uids import ResultUids, derived_uid

__all__ = ["check_measurements", "create_report"]

IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
VOLUME = ("118565006", "SCT")
VOLUME_UNITS = frozenset({("ml", "UCUM"), ("mm3", "UCUM")})

MeasurementGroup = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


def check_measurements(result: PipelineResult, written: Sequence[WrittenSegment]) -> None:
    """Raise WriterInputError unless every measurement is finite and names a known segment (if
    any), volumes are in ml or mm3, and every written segment has its volume."""
    labels = {segment.label for segment in result.segments}
    for measurement in result.measurements:
        name = measurement.name.meaning
        if not math.isfinite(measurement.value):
            raise WriterInputError(f"measurement {name!r} is not a finite number")
        if measurement.segment_label is not None and measurement.segment_label not in labels:
            raise WriterInputError(
                f"measurement {name!r} refers to segment label {measurement.segment_label}, "
                "which is not in the segment table"
            )
        unit = (measurement.unit.value, measurement.unit.scheme_designator)
        if _is_volume(measurement) and unit not in VOLUME_UNITS:
            raise WriterInputError(f"a volume must be in UCUM ml or mm3 (got {unit})")
    for item in written:
        if not any(
            _is_volume(m) and m.derivation is None and m.segment_label == item.segment.label
            for m in result.measurements
        ):
            raise WriterInputError(
                f"segment {item.segment.name!r} has voxels but no Volume measurement "
                "(pipelines add them with pipelines.segment_volumes)"
            )


def create_report(
    segmentation: hd.seg.Segmentation,
    sources: Sequence[Dataset],
    result: PipelineResult,
    written: Sequence[WrittenSegment],
    algorithm: AlgorithmInfo,
    options: WriterOptions,
    uids: ResultUids,
) -> hd.sr.Comprehensive3DSR:
    """The report on `result` whose ROIs are the `written` segments of `segmentation`."""
    algorithm_id = hd.sr.AlgorithmIdentification(
        name=algorithm.name,
        version=algorithm.version,
        family=coded(algorithm.family),
        manufacturer=options.manufacturer,
    )
    try:
        groups: list[MeasurementGroup] = [
            _segment_group(item, segmentation, sources[0], result, algorithm_id) for item in written
        ]
        groups += _groups_without_roi(result, written, algorithm, algorithm_id)
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_device_context=_device_observer(algorithm, options)
            ),
            procedure_reported=_procedures_reported(sources[0]),
            imaging_measurements=groups,
            title=codes.DCM.ImagingMeasurementReport,
        )
        _add_document_evaluations(report, result.evaluations)
        with patient_name_copied_verbatim():
            return hd.sr.Comprehensive3DSR(
                evidence=[*sources, segmentation],
                content=report,
                series_instance_uid=uids.report_series,
                series_number=options.sr_series_number,
                sop_instance_uid=uids.report_instance,
                instance_number=1,
                manufacturer=options.manufacturer,
                is_complete=True,
                institution_name=options.institution_name,
                series_description=options.sr_series_description,
                manufacturer_model_name=options.manufacturer_model_name,
                software_versions=options.software_versions,
                device_serial_number=options.device_serial_number,
                coding_schemes=_local_coding_schemes(result),
            )
    except (ValueError, AttributeError) as exc:  # inputs highdicom cannot encode, or lacks
        raise WriterInputError(f"highdicom cannot build the SR: {exc}") from exc


def _segment_group(
    item: WrittenSegment,
    segmentation: hd.seg.Segmentation,
    source: Dataset,
    result: PipelineResult,
    algorithm_id: hd.sr.AlgorithmIdentification,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 for one SEG segment."""
    segment = item.segment
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=item.tracking_uid, identifier=segment.description
        ),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=segmentation.SOPClassUID,
            sop_instance_uid=segmentation.SOPInstanceUID,
            segment_number=item.segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(str(source.SeriesInstanceUID)),
        ),
        finding_type=coded(segment.type),
        finding_category=coded(segment.category),
        finding_sites=_finding_sites(segment),
        algorithm_id=algorithm_id,
        measurements=_measurements(result.measurements, segment.label),
        qualitative_evaluations=_evaluations(result.evaluations, segment.label),
    )


def _groups_without_roi(
    result: PipelineResult,
    written: Sequence[WrittenSegment],
    algorithm: AlgorithmInfo,
    algorithm_id: hd.sr.AlgorithmIdentification,
) -> list[MeasurementGroup]:
    """TID 1501 groups: one per empty segment that has measurements or evaluations, one for
    measurements of no segment."""
    written_labels = {item.segment.label for item in written}
    groups: list[MeasurementGroup] = []
    for segment in sorted(result.segments, key=lambda segment: segment.label):
        measurements = _measurements(result.measurements, segment.label)
        evaluations = _evaluations(result.evaluations, segment.label)
        if segment.label not in written_labels and (measurements or evaluations):
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(identifier=segment.description),
                    finding_type=coded(segment.type),
                    finding_category=coded(segment.category),
                    finding_sites=_finding_sites(segment),
                    algorithm_id=algorithm_id,
                    measurements=measurements,
                    qualitative_evaluations=evaluations,
                )
            )
    unattached = _measurements(result.measurements, None)
    if unattached:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(identifier=algorithm.name),
                algorithm_id=algorithm_id,
                measurements=unattached,
            )
        )
    return groups


def _is_volume(measurement: Measurement) -> bool:
    return (measurement.name.value, measurement.name.scheme_designator) == VOLUME


def _measurements(
    measurements: Sequence[Measurement], segment_label: int | None
) -> list[hd.sr.Measurement]:
    return [
        hd.sr.Measurement(
            name=coded(m.name),
            value=m.value,
            unit=coded(m.unit),
            derivation=None if m.derivation is None else coded(m.derivation),
        )
        for m in measurements
        if m.segment_label == segment_label
    ]


def _evaluations(
    evaluations: Sequence[Evaluation], segment_label: int | None
) -> list[hd.sr.QualitativeEvaluation] | None:
    chosen = [
        hd.sr.QualitativeEvaluation(name=coded(e.name), value=coded(e.value))
        for e in evaluations
        if e.segment_label == segment_label
    ]
    return chosen or None


def _add_document_evaluations(
    report: hd.sr.MeasurementReport, evaluations: Sequence[Evaluation]
) -> None:
    """TID 1500 row 10: evaluations of no segment, in a "Qualitative Evaluations" container
    after the Imaging Measurements."""
    items = _evaluations(evaluations, None)
    if items is None:
        return
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [content for item in items for content in item], is_root=False
    )
    report[0].ContentSequence.append(container)


def _finding_sites(segment: Segment) -> list[hd.sr.FindingSite] | None:
    """The anatomic region, else (for a paired structure) the structure itself, with the
    segment's laterality."""
    site = segment.anatomic_region
    if site is None and segment.laterality is not None:
        site = segment.type
    if site is None:
        return None
    laterality = None if segment.laterality is None else coded(segment.laterality)
    return [hd.sr.FindingSite(anatomic_location=coded(site), laterality=laterality)]


def _local_coding_schemes(result: PipelineResult) -> list[CodingSchemeIdentificationItem] | None:
    """One identification item per local ("99...") coding scheme the report uses (None when
    it uses none: the sequence must not be empty)."""
    local = sorted(
        {c.scheme_designator for c in _codes_of(result) if c.scheme_designator[:2] == "99"}
    )
    return [
        CodingSchemeIdentificationItem(
            designator,
            name=LOCAL_SCHEME_NAME if designator == LOCAL_SCHEME else None,
            responsible_organization="dicom-node" if designator == LOCAL_SCHEME else None,
        )
        for designator in local
    ] or None


def _codes_of(result: PipelineResult) -> Iterator[Code]:
    for segment in result.segments:
        yield from (segment.category, segment.type)
        yield from (c for c in (segment.anatomic_region, segment.laterality) if c is not None)
    for measurement in result.measurements:
        yield from (measurement.name, measurement.unit)
        if measurement.derivation is not None:
            yield measurement.derivation
    for evaluation in result.evaluations:
        yield from (evaluation.name, evaluation.value)


def _device_observer(algorithm: AlgorithmInfo, options: WriterOptions) -> hd.sr.ObserverContext:
    """TID 1004: the node running the algorithm. Its UID is derived from the device's identity,
    so every report of the same node and algorithm names the same observer."""
    uid = derived_uid(
        options.manufacturer,
        options.manufacturer_model_name,
        options.device_serial_number,
        algorithm.name,
    )
    return hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid,
            name=algorithm.name,
            manufacturer_name=options.manufacturer,
            model_name=options.manufacturer_model_name,
            serial_number=options.device_serial_number,
        ),
    )


def _procedures_reported(source: Dataset) -> list[hd.sr.CodedConcept]:
    """The source's ProcedureCodeSequence items that are complete codes, else "Imaging
    procedure" (TID 1500 row 4 takes CID 100, which is extensible)."""
    procedures = [
        hd.sr.CodedConcept(
            str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning)
        )
        for item in source.get("ProcedureCodeSequence", [])
        if item.get("CodeValue") and item.get("CodingSchemeDesignator") and item.get("CodeMeaning")
    ]
    return procedures or [IMAGING_PROCEDURE]
