"""Which stored instances a retrieve names: a study, a series or single instances.

Shared by C-MOVE/C-GET (PS3.4 C.4.2/C.4.3: the unique keys of the identifier) and WADO-RS
(PS3.18 10.4: the UIDs in the URL). Instances come in a stable order: series number, then
instance number, then SOP Instance UID.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from dicom_node.index import Index
from dicom_node.index.schema import InstanceRow, SeriesRow, StudyRow

__all__ = ["InstanceLocation", "locate_instances"]


@dataclass(frozen=True)
class InstanceLocation:
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    number_of_frames: int | None
    file_path: str  # relative to the storage root (StorageArea.absolute makes it a Path)
    file_size: int


def locate_instances(
    index: Index,
    *,
    study_instance_uids: Sequence[str] = (),
    series_instance_uids: Sequence[str] = (),
    sop_instance_uids: Sequence[str] = (),
) -> list[InstanceLocation]:
    """Instances in any of the given studies AND series AND with any of the given SOP
    Instance UIDs (an empty list does not restrict). At least one list must be non-empty;
    the caller validates the UIDs (dicom_node.uids.is_valid_uid) before."""
    if not (study_instance_uids or series_instance_uids or sop_instance_uids):
        raise ValueError("locate_instances needs at least one UID")
    statement = (
        select(
            StudyRow.study_instance_uid,
            SeriesRow.series_instance_uid,
            InstanceRow.sop_class_uid,
            InstanceRow.sop_instance_uid,
            InstanceRow.transfer_syntax_uid,
            InstanceRow.number_of_frames,
            InstanceRow.file_path,
            InstanceRow.file_size,
        )
        .join(SeriesRow, SeriesRow.id == InstanceRow.series_pk)
        .join(StudyRow, StudyRow.id == SeriesRow.study_pk)
        .order_by(
            StudyRow.study_instance_uid,
            SeriesRow.series_number,
            SeriesRow.series_instance_uid,
            InstanceRow.instance_number,
            InstanceRow.sop_instance_uid,
        )
    )
    if study_instance_uids:
        statement = statement.where(StudyRow.study_instance_uid.in_(list(study_instance_uids)))
    if series_instance_uids:
        statement = statement.where(SeriesRow.series_instance_uid.in_(list(series_instance_uids)))
    if sop_instance_uids:
        statement = statement.where(InstanceRow.sop_instance_uid.in_(list(sop_instance_uids)))
    with index.read_connection() as connection:
        rows = connection.execute(statement).all()
    return [
        InstanceLocation(
            study_instance_uid=row.study_instance_uid,
            series_instance_uid=row.series_instance_uid,
            sop_class_uid=row.sop_class_uid,
            sop_instance_uid=row.sop_instance_uid,
            transfer_syntax_uid=row.transfer_syntax_uid,
            number_of_frames=row.number_of_frames,
            file_path=row.file_path,
            file_size=int(row.file_size),
        )
        for row in rows
    ]
