"""The index: one SQL database (SQLite in WAL mode by default, or PostgreSQL).

`record_instance` writes patient, study, series and instance rows in one transaction; when it
returns, the row is committed (SQLite `synchronous=FULL`: the WAL is on disk).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, overload

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    case,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from dicom_node.fs import FileLock, fsync_directory
from dicom_node.index.schema import (
    Base,
    InstanceRow,
    PatientRow,
    SeriesRow,
    StudyRow,
    SupersededFileRow,
)

__all__ = [
    "Index",
    "IndexedInstance",
    "SeriesSummary",
    "StoredInstance",
    "StudySummary",
    "SupersededFile",
    "as_utc",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexedInstance:
    """Everything the index keeps about one received instance."""

    patient_key: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_instance_uid: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    body_part_examined: str
    series_date: str
    series_time: str
    protocol_name: str
    manufacturer: str
    frame_of_reference_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    file_path: str
    file_size: int
    sha256: str
    received_sha256: str
    received_at: datetime
    calling_ae_title: str
    called_ae_title: str
    source_address: str
    uids_repaired: bool
    origin: str = "received"  # or "result": written by the node itself


@dataclass(frozen=True)
class SupersededFile:
    sop_instance_uid: str
    file_path: str
    sha256: str
    superseded_at: datetime


@dataclass(frozen=True)
class StoredInstance:
    sop_instance_uid: str
    series_instance_uid: str
    file_path: str
    sha256: str
    received_sha256: str


@dataclass(frozen=True)
class SeriesSummary:
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    body_part_examined: str
    instance_count: int
    first_received_at: datetime
    last_received_at: datetime
    origin: str = "received"
    receipts: int = 0
    ready_receipts: int = 0
    ready_at: datetime | None = None
    ready_reason: str = ""
    ready_count: int = 0
    expected_instances: int | None = None
    expected_from: str = ""


@dataclass(frozen=True)
class StudySummary:
    study_instance_uid: str
    study_date: str
    study_description: str
    accession_number: str
    patient_id: str
    series_count: int
    instance_count: int


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, FULL sync so a commit survives power loss, a busy timeout
    for concurrent writers, and BEGIN IMMEDIATE for write transactions so two writers never
    deadlock on a lock upgrade (reads use a plain BEGIN and never wait for writers)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below rule
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_PATIENT = cast(Table, PatientRow.__table__)
_STUDY = cast(Table, StudyRow.__table__)
_SERIES = cast(Table, SeriesRow.__table__)
_INSTANCE = cast(Table, InstanceRow.__table__)
_SUPERSEDED = cast(Table, SupersededFileRow.__table__)


@dataclass(frozen=True)
class _Statements:
    """The write path's statements, built once: executing a prebuilt statement with a parameter
    dict hits SQLAlchemy's compiled cache, which keeps an insert at tens of microseconds."""

    insert_new: dict[str, Any]
    lookup: dict[str, Any]
    touch_series: Any
    upsert_instance: Any
    insert_superseded: Any
    find_instance: Any

    @classmethod
    def build(cls, dialect_insert: Any) -> _Statements:
        keys = {
            "patient": _PATIENT.c.patient_key,
            "study": _STUDY.c.study_instance_uid,
            "series": _SERIES.c.series_instance_uid,
        }
        insert_new = {
            name: dialect_insert(column.table).on_conflict_do_nothing(index_elements=[column])
            for name, column in keys.items()
        }
        lookup = {
            name: select(column.table.c.id).where(column == bindparam("key"))
            for name, column in keys.items()
        }
        series = _SERIES
        at = bindparam("at", type_=series.c.last_received_at.type)
        touch_series = (
            update(series)
            .where(series.c.id == bindparam("pk"))
            .values(
                # Receipts can commit out of order: only ever widen [first, last].
                first_received_at=case(
                    (series.c.first_received_at > at, at), else_=series.c.first_received_at
                ),
                last_received_at=case(
                    (series.c.last_received_at < at, at), else_=series.c.last_received_at
                ),
                receipts=series.c.receipts + 1,
            )
        )
        instance = _INSTANCE
        insert_instance = dialect_insert(instance)
        upsert_instance = insert_instance.on_conflict_do_update(
            index_elements=[instance.c.sop_instance_uid],
            set_={
                column.name: insert_instance.excluded[column.name]
                for column in instance.c
                if column.name not in ("id", "sop_instance_uid")
            },
        )
        find_instance = (
            select(
                instance.c.file_path,
                instance.c.sha256,
                instance.c.received_sha256,
                series.c.series_instance_uid,
            )
            .join(series, series.c.id == instance.c.series_pk)
            .where(instance.c.sop_instance_uid == bindparam("uid"))
        )
        return cls(
            insert_new=insert_new,
            lookup=lookup,
            touch_series=touch_series,
            upsert_instance=upsert_instance,
            insert_superseded=insert(_SUPERSEDED),
            find_instance=find_instance,
        )


class _NoLock:
    @contextmanager
    def held(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


_MAX_GROUP = 64  # instances committed together at most


@dataclass
class _PendingWrite:
    item: IndexedInstance
    superseded: SupersededFile | None
    durable_first: tuple[Path, ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A datetime read from the index, timezone-aware (SQLite returns naive ones; everything
    stored is UTC)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Index:
    """Thread-safe access to the index database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        parsed = make_url(url)
        self._dialect = parsed.get_backend_name()
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use sqlite or postgresql")
        kwargs: dict[str, Any] = {"echo": echo}
        if self._dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self._engine = create_engine(parsed, **kwargs)
        # SQLite writers in several processes would otherwise meet in SQLite's busy handler,
        # which sleeps in steps of milliseconds; a file lock hands over at once.
        self._write_lock: FileLock | _NoLock = _NoLock()
        if self._dialect == "sqlite":
            _configure_sqlite(self._engine)
            if parsed.database and parsed.database != ":memory:":
                self._write_lock = FileLock(Path(f"{parsed.database}.writelock"))
        Base.metadata.create_all(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_engine = self._engine.execution_options(sqlite_immediate=True)
        self._statements = _Statements.build(
            sqlite.insert if self._dialect == "sqlite" else postgresql.insert
        )
        self._queue: queue.SimpleQueue[_PendingWrite | None] = queue.SimpleQueue()
        self._readers: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._writer_connection: Connection | None = None  # used by the writer thread only
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        # uid/key -> primary key, filled only after a commit: rows are never deleted.
        # Read and written by the writer thread only.
        self._known: dict[tuple[str, str], int] = {}

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def engine(self) -> Engine:
        """For the modules that own other tables of this database (jobs, dispatch, series)."""
        return self._engine

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction shared with the instance writers' lock (SQLite: BEGIN IMMEDIATE
        under the cross-process write lock, so it never waits in SQLite's busy handler)."""
        with (
            self._write_lock.held(),
            self._write_engine.connect() as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            yield connection

    def close(self) -> None:
        with self._writer_lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break
        self._engine.dispose()
        self._write_lock.close()

    def _get_or_create(
        self,
        connection: Connection,
        table: Any,
        key: str,
        values: dict[str, Any],
        new: list[tuple[tuple[str, str], int]],
    ) -> int:
        cache_key = (table.name, key)
        known = self._known.get(cache_key)
        if known is not None:
            return known
        statements = self._statements
        connection.execute(statements.insert_new[table.name], values)
        primary_key = connection.execute(statements.lookup[table.name], {"key": key}).scalar_one()
        new.append((cache_key, primary_key))
        return int(primary_key)

    def find_instance(self, sop_instance_uid: str) -> StoredInstance | None:
        # The hot-path lookup keeps its connections checked out (pool checkout and return
        # cost more than the query); each read ends its transaction so WAL can checkpoint.
        try:
            connection = self._readers.get_nowait()
        except queue.Empty:
            connection = self._engine.connect()
        try:
            row = connection.execute(
                self._statements.find_instance, {"uid": sop_instance_uid}
            ).first()
            connection.rollback()
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        self._readers.put(connection)
        if row is None:
            return None
        return StoredInstance(
            sop_instance_uid=sop_instance_uid,
            series_instance_uid=row.series_instance_uid,
            file_path=row.file_path,
            sha256=row.sha256,
            received_sha256=row.received_sha256,
        )

    def record_instance(
        self,
        item: IndexedInstance,
        superseded: SupersededFile | None = None,
        *,
        durable_first: Sequence[Path] = (),
    ) -> None:
        """Commit the rows for `item` (insert, or replace the instance row on a re-send).

        `durable_first` names folders whose new entries must be on disk before the row
        commits (the stored file's folder); each is fsynced once for the whole group.

        Returns once the transaction holding them has committed. Concurrent callers share one
        transaction (group commit): one WAL sync for every instance waiting at that moment.
        """
        pending = _PendingWrite(item, superseded, tuple(durable_first))
        with self._writer_lock:
            if self._writer is None:
                if self._closed:
                    raise RuntimeError("index is closed")
                self._writer = threading.Thread(
                    target=self._write_loop, name="index-writer", daemon=True
                )
                self._writer.start()
            self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                if self._writer_connection is not None:
                    self._writer_connection.close()
                return
            batch = [first]
            while len(batch) < _MAX_GROUP:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(following)
            self._commit(batch)

    def _commit(self, batch: list[_PendingWrite]) -> None:
        new: list[tuple[tuple[str, str], int]] = []
        try:
            for folder in dict.fromkeys(p for pending in batch for p in pending.durable_first):
                fsync_directory(folder)
            if self._writer_connection is None:
                self._writer_connection = self._write_engine.connect()
            connection = self._writer_connection
            with self._write_lock.held(), connection.begin():
                for pending in batch:
                    self._write(connection, pending.item, pending.superseded, new)
        except Exception as exc:
            if self._writer_connection is not None and self._writer_connection.invalidated:
                self._writer_connection.close()
                self._writer_connection = None
            if len(batch) > 1:
                # Find the culprit: every other write still commits, on its own.
                for pending in batch:
                    self._commit([pending])
                return
            batch[0].error = exc
        else:
            self._known.update(new)
        for pending in batch:
            pending.done.set()

    def _write(
        self,
        connection: Connection,
        item: IndexedInstance,
        superseded: SupersededFile | None,
        new: list[tuple[tuple[str, str], int]],
    ) -> None:
        statements = self._statements
        patient_pk = self._get_or_create(
            connection,
            _PATIENT,
            item.patient_key,
            {
                "patient_key": item.patient_key,
                "patient_id": item.patient_id,
                "issuer_of_patient_id": item.issuer_of_patient_id,
                "patient_name": item.patient_name,
                "patient_birth_date": item.patient_birth_date,
                "patient_sex": item.patient_sex,
            },
            new,
        )
        study_pk = self._get_or_create(
            connection,
            _STUDY,
            item.study_instance_uid,
            {
                "study_instance_uid": item.study_instance_uid,
                "patient_pk": patient_pk,
                "study_date": item.study_date,
                "study_time": item.study_time,
                "accession_number": item.accession_number,
                "study_id": item.study_id,
                "study_description": item.study_description,
                "referring_physician_name": item.referring_physician_name,
                "created_at": item.received_at,
            },
            new,
        )
        series_pk = self._get_or_create(
            connection,
            _SERIES,
            item.series_instance_uid,
            {
                "series_instance_uid": item.series_instance_uid,
                "study_pk": study_pk,
                "modality": item.modality,
                "series_number": item.series_number,
                "series_description": item.series_description,
                "body_part_examined": item.body_part_examined,
                "series_date": item.series_date,
                "series_time": item.series_time,
                "protocol_name": item.protocol_name,
                "manufacturer": item.manufacturer,
                "frame_of_reference_uid": item.frame_of_reference_uid,
                "origin": item.origin,
                "first_received_at": item.received_at,
                "last_received_at": item.received_at,
            },
            new,
        )
        connection.execute(statements.touch_series, {"pk": series_pk, "at": item.received_at})
        connection.execute(
            statements.upsert_instance,
            {
                "sop_instance_uid": item.sop_instance_uid,
                "series_pk": series_pk,
                "sop_class_uid": item.sop_class_uid,
                "instance_number": item.instance_number,
                "transfer_syntax_uid": item.transfer_syntax_uid,
                "rows": item.rows,
                "columns": item.columns,
                "number_of_frames": item.number_of_frames,
                "file_path": item.file_path,
                "file_size": item.file_size,
                "sha256": item.sha256,
                "received_sha256": item.received_sha256,
                "received_at": item.received_at,
                "calling_ae_title": item.calling_ae_title,
                "called_ae_title": item.called_ae_title,
                "source_address": item.source_address,
                "uids_repaired": item.uids_repaired,
            },
        )
        if superseded is not None:
            connection.execute(
                statements.insert_superseded,
                {
                    "sop_instance_uid": superseded.sop_instance_uid,
                    "file_path": superseded.file_path,
                    "sha256": superseded.sha256,
                    "superseded_at": superseded.superseded_at,
                },
            )

    def series_summary(self, series_instance_uid: str) -> SeriesSummary | None:
        with self._sessions() as session:
            row = session.execute(
                select(SeriesRow, StudyRow.study_instance_uid, func.count(InstanceRow.id))
                .join(StudyRow, StudyRow.id == SeriesRow.study_pk)
                .outerjoin(InstanceRow, InstanceRow.series_pk == SeriesRow.id)
                .where(SeriesRow.series_instance_uid == series_instance_uid)
                .group_by(SeriesRow.id, StudyRow.study_instance_uid)
            ).first()
        if row is None:
            return None
        series, study_uid, count = row
        return SeriesSummary(
            series_instance_uid=series.series_instance_uid,
            study_instance_uid=study_uid,
            modality=series.modality,
            series_number=series.series_number,
            series_description=series.series_description,
            body_part_examined=series.body_part_examined,
            instance_count=int(count),
            first_received_at=as_utc(series.first_received_at),
            last_received_at=as_utc(series.last_received_at),
            origin=series.origin,
            receipts=series.receipts,
            ready_receipts=series.ready_receipts,
            ready_at=as_utc(series.ready_at),
            ready_reason=series.ready_reason,
            ready_count=series.ready_count,
            expected_instances=series.expected_instances,
            expected_from=series.expected_from,
        )

    def list_studies(self, *, limit: int, offset: int) -> tuple[int, list[StudySummary]]:
        """Studies newest first, with the total count for paging."""
        with self._sessions() as session:
            total = session.execute(select(func.count(StudyRow.id))).scalar_one()
            series_count = (
                select(func.count(SeriesRow.id))
                .where(SeriesRow.study_pk == StudyRow.id)
                .scalar_subquery()
            )
            instance_count = (
                select(func.count(InstanceRow.id))
                .join(SeriesRow, SeriesRow.id == InstanceRow.series_pk)
                .where(SeriesRow.study_pk == StudyRow.id)
                .scalar_subquery()
            )
            rows = session.execute(
                select(StudyRow, PatientRow.patient_id, series_count, instance_count)
                .join(PatientRow, PatientRow.id == StudyRow.patient_pk)
                .order_by(StudyRow.created_at.desc(), StudyRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return int(total), [
            StudySummary(
                study_instance_uid=study.study_instance_uid,
                study_date=study.study_date,
                study_description=study.study_description,
                accession_number=study.accession_number,
                patient_id=patient_id,
                series_count=int(n_series),
                instance_count=int(n_instances),
            )
            for study, patient_id, n_series, n_instances in rows
        ]

    def instance_count(self) -> int:
        with self._sessions() as session:
            return int(session.execute(select(func.count(InstanceRow.id))).scalar_one())

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self._sessions() as session:
            session.execute(select(1))
