"""What the index holds of one series at a moment: its instances and their content digest."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from dicom_node.index import as_utc
from dicom_node.index.schema import InstanceRow, SeriesRow, StudyRow

__all__ = ["InstanceEntry", "SeriesSnapshot", "load_snapshot", "pending_series"]

_SERIES = cast(Table, SeriesRow.__table__)
_INSTANCE = cast(Table, InstanceRow.__table__)
_STUDY = cast(Table, StudyRow.__table__)


@dataclass(frozen=True)
class InstanceEntry:
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    file_path: str  # relative to the storage root
    sha256: str
    calling_ae_title: str
    called_ae_title: str


@dataclass(frozen=True)
class SeriesSnapshot:
    series_pk: int
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    origin: str
    last_received_at: datetime
    ready_at: datetime | None
    receipts: int
    ready_receipts: int
    expected_instances: int | None
    expected_from: str
    instances: tuple[InstanceEntry, ...]  # by InstanceNumber, then SOP Instance UID

    @property
    def instance_count(self) -> int:
        return len(self.instances)

    @property
    def content_sha256(self) -> str:
        """Digest of which instances, with which bytes, the series holds (order-free)."""
        digest = hashlib.sha256()
        for uid, sha in sorted((i.sop_instance_uid, i.sha256) for i in self.instances):
            digest.update(f"{uid}={sha}\n".encode())
        return digest.hexdigest()

    @property
    def is_ready(self) -> bool:
        """Handed to routing after its last instance was written."""
        return self.ready_receipts >= self.receipts

    def most_common_ae_titles(self) -> tuple[str | None, str | None]:
        """(calling, called) AE titles most instances arrived with; None when unknown."""
        calling = Counter(i.calling_ae_title for i in self.instances if i.calling_ae_title)
        called = Counter(i.called_ae_title for i in self.instances if i.called_ae_title)
        return (
            calling.most_common(1)[0][0] if calling else None,
            called.most_common(1)[0][0] if called else None,
        )


def pending_series(connection: Connection) -> list[str]:
    """Received series with instances newer than their last hand-over to routing."""
    series = _SERIES
    rows = connection.execute(
        select(series.c.series_instance_uid).where(
            series.c.origin == "received",
            series.c.receipts > series.c.ready_receipts,
        )
    )
    return [row[0] for row in rows]


_SNAPSHOT_SERIES = (
    select(_SERIES, _STUDY.c.study_instance_uid)
    .join(_STUDY, _STUDY.c.id == _SERIES.c.study_pk)
    .where(_SERIES.c.series_instance_uid == bindparam("uid"))
)
_SNAPSHOT_INSTANCES = (
    select(_INSTANCE)
    .where(_INSTANCE.c.series_pk == bindparam("pk"))
    .order_by(_INSTANCE.c.instance_number, _INSTANCE.c.sop_instance_uid)
)


def load_snapshot(connection: Connection, series_instance_uid: str) -> SeriesSnapshot | None:
    row = connection.execute(_SNAPSHOT_SERIES, {"uid": series_instance_uid}).first()
    if row is None:
        return None
    instances = tuple(
        InstanceEntry(
            sop_instance_uid=i.sop_instance_uid,
            sop_class_uid=i.sop_class_uid,
            instance_number=i.instance_number,
            file_path=i.file_path,
            sha256=i.sha256,
            calling_ae_title=i.calling_ae_title,
            called_ae_title=i.called_ae_title,
        )
        for i in connection.execute(_SNAPSHOT_INSTANCES, {"pk": row.id})
    )
    last = as_utc(row.last_received_at)
    assert last is not None
    return SeriesSnapshot(
        series_pk=row.id,
        series_instance_uid=row.series_instance_uid,
        study_instance_uid=row.study_instance_uid,
        modality=row.modality,
        origin=row.origin,
        last_received_at=last,
        ready_at=as_utc(row.ready_at),
        receipts=row.receipts,
        ready_receipts=row.ready_receipts,
        expected_instances=row.expected_instances,
        expected_from=row.expected_from,
        instances=instances,
    )
