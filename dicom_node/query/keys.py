"""The keys the index answers, per level (PS3.4 C.6.1.1 and C.6.2.1 key tables; PS3.18
table 10.6.1-5 for QIDO-RS).

A key is answered from an index column, or computed from the index (counts, Modalities in
Study, Instance Availability). Every other requested attribute is returned from the entity's
representative stored file (dicom_node.query.engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from dicom_node.index.schema import InstanceRow, PatientRow, SeriesRow, StudyRow
from dicom_node.query.model import InformationModel, QueryLevel

__all__ = [
    "INDEX_KEYS",
    "Computed",
    "IndexKey",
    "answering_level",
    "index_key",
    "keys_at",
    "unique_key_tags",
]


class Computed(Enum):
    """Keys computed from the index rather than stored in a column."""

    PATIENT_STUDIES = "NumberOfPatientRelatedStudies"
    PATIENT_SERIES = "NumberOfPatientRelatedSeries"
    PATIENT_INSTANCES = "NumberOfPatientRelatedInstances"
    STUDY_SERIES = "NumberOfStudyRelatedSeries"
    STUDY_INSTANCES = "NumberOfStudyRelatedInstances"
    SERIES_INSTANCES = "NumberOfSeriesRelatedInstances"
    MODALITIES_IN_STUDY = "ModalitiesInStudy"
    INSTANCE_AVAILABILITY = "InstanceAvailability"


@dataclass(frozen=True)
class IndexKey:
    keyword: str
    # The level the attribute belongs to; None: any level (Instance Availability).
    level: QueryLevel | None
    column: Any = None  # the mapped column, or None when computed
    computed: Computed | None = None

    @property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return tag

    @property
    def vr(self) -> str:
        return dictionary_VR(self.tag)


def _columns(level: QueryLevel, pairs: dict[str, Any]) -> list[IndexKey]:
    return [IndexKey(keyword, level, column) for keyword, column in pairs.items()]


def _computed(level: QueryLevel | None, *kinds: Computed) -> list[IndexKey]:
    return [IndexKey(kind.value, level, computed=kind) for kind in kinds]


_PATIENT, _STUDY, _SERIES, _IMAGE = (
    QueryLevel.PATIENT,
    QueryLevel.STUDY,
    QueryLevel.SERIES,
    QueryLevel.IMAGE,
)

INDEX_KEYS: dict[int, IndexKey] = {
    key.tag: key
    for key in [
        *_columns(
            _PATIENT,
            {
                "PatientID": PatientRow.patient_id,
                "IssuerOfPatientID": PatientRow.issuer_of_patient_id,
                "PatientName": PatientRow.patient_name,
                "PatientBirthDate": PatientRow.patient_birth_date,
                "PatientSex": PatientRow.patient_sex,
            },
        ),
        *_computed(
            _PATIENT,
            Computed.PATIENT_STUDIES,
            Computed.PATIENT_SERIES,
            Computed.PATIENT_INSTANCES,
        ),
        *_columns(
            _STUDY,
            {
                "StudyInstanceUID": StudyRow.study_instance_uid,
                "StudyDate": StudyRow.study_date,
                "StudyTime": StudyRow.study_time,
                "AccessionNumber": StudyRow.accession_number,
                "StudyID": StudyRow.study_id,
                "StudyDescription": StudyRow.study_description,
                "ReferringPhysicianName": StudyRow.referring_physician_name,
            },
        ),
        *_computed(
            _STUDY,
            Computed.MODALITIES_IN_STUDY,
            Computed.STUDY_SERIES,
            Computed.STUDY_INSTANCES,
        ),
        *_columns(
            _SERIES,
            {
                "SeriesInstanceUID": SeriesRow.series_instance_uid,
                "Modality": SeriesRow.modality,
                "SeriesNumber": SeriesRow.series_number,
                "SeriesDescription": SeriesRow.series_description,
                "BodyPartExamined": SeriesRow.body_part_examined,
                "SeriesDate": SeriesRow.series_date,
                "SeriesTime": SeriesRow.series_time,
                "ProtocolName": SeriesRow.protocol_name,
                "Manufacturer": SeriesRow.manufacturer,
            },
        ),
        *_computed(_SERIES, Computed.SERIES_INSTANCES),
        *_columns(
            _IMAGE,
            {
                "SOPInstanceUID": InstanceRow.sop_instance_uid,
                "SOPClassUID": InstanceRow.sop_class_uid,
                "InstanceNumber": InstanceRow.instance_number,
                "Rows": InstanceRow.rows,
                "Columns": InstanceRow.columns,
                "NumberOfFrames": InstanceRow.number_of_frames,
                "AvailableTransferSyntaxUID": InstanceRow.transfer_syntax_uid,
            },
        ),
        *_computed(None, Computed.INSTANCE_AVAILABILITY),
    ]
}

_UNIQUE = {
    _PATIENT: "PatientID",
    _STUDY: "StudyInstanceUID",
    _SERIES: "SeriesInstanceUID",
    _IMAGE: "SOPInstanceUID",
}


def index_key(tag: int) -> IndexKey | None:
    return INDEX_KEYS.get(tag)


def answering_level(key: IndexKey, model: InformationModel) -> QueryLevel | None:
    """The level at which `key` is a key of `model` (Study Root has the patient attributes at
    the STUDY level, PS3.4 C.6.2.1); None for keys valid at every level."""
    if key.level is _PATIENT and model is InformationModel.STUDY_ROOT:
        return _STUDY
    return key.level


def keys_at(level: QueryLevel, model: InformationModel) -> list[IndexKey]:
    """The index keys answered for a query at `level`: those of the level and above."""
    return [
        key
        for key in INDEX_KEYS.values()
        if (answering := answering_level(key, model)) is None or answering.depth <= level.depth
    ]


def unique_key_tags(level: QueryLevel, model: InformationModel) -> tuple[int, ...]:
    """The unique keys of `level` and the levels above (PS3.4 C.6.1.1.1/C.6.2.1.1): Patient ID
    is one in the Patient Root model only."""
    return tuple(
        INDEX_KEYS_BY_KEYWORD[_UNIQUE[upper]].tag
        for upper in model.levels
        if upper.depth <= level.depth
    )


INDEX_KEYS_BY_KEYWORD = {key.keyword: key for key in INDEX_KEYS.values()}
