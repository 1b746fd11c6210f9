"""The index on both databases it supports: SQLite (WAL, default) and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from dicom_node.index.repository import Index, IndexedInstance, StoredInstance, SupersededFile
from dicom_node.index.schema import PatientRow, SeriesRow, StudyRow, SupersededFileRow
from tests.support.postgres import PostgresServer, running_postgres

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
STUDY = "1.2.826.0.1.3680043.10.1001.1"
SERIES = "1.2.826.0.1.3680043.10.1001.1.1"
PATIENT = "PAT001^^^ISSUER"


def make_instance(
    number: int,
    *,
    series: str = SERIES,
    study: str = STUDY,
    patient_key: str = PATIENT,
    received_at: datetime | None = None,
    sha256: str | None = None,
    received_sha256: str | None = None,
    file_path: str | None = None,
) -> IndexedInstance:
    """A fully populated instance; `number` makes the SOP Instance UID unique in `series`."""
    sop_instance_uid = f"{series}.{number}"
    return IndexedInstance(
        patient_key=patient_key,
        patient_id=patient_key.split("^")[0],
        issuer_of_patient_id="ISSUER",
        patient_name="Doe^Jane",
        patient_birth_date="19700101",
        patient_sex="F",
        study_instance_uid=study,
        study_date="20240501",
        study_time="120000",
        accession_number="ACC1",
        study_id="1",
        study_description="CT Chest",
        referring_physician_name="Who^Doctor",
        series_instance_uid=series,
        modality="CT",
        series_number=2,
        series_description="Axial 1mm",
        body_part_examined="CHEST",
        series_date="20240501",
        series_time="120100",
        protocol_name="Chest",
        manufacturer="ACME",
        frame_of_reference_uid=f"{study}.9",
        sop_instance_uid=sop_instance_uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        instance_number=number,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=512,
        columns=512,
        number_of_frames=None,
        file_path=file_path or f"{study}/{series}/{sop_instance_uid}.dcm",
        file_size=526_000 + number,
        sha256=sha256 or f"{number:064x}",
        received_sha256=received_sha256 or sha256 or f"{number:064x}",
        received_at=received_at or T0 + timedelta(seconds=number),
        calling_ae_title="MODALITY",
        called_ae_title="DICOM_NODE",
        source_address="127.0.0.1",
        uids_repaired=False,
    )


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_schema()


@pytest.fixture
def index(index_url: str) -> Iterator[Index]:
    opened = Index(index_url)
    yield opened
    opened.close()


def count_rows(url: str, table: Any) -> int:
    """Rows in `table`, read over a connection of its own."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_recorded_instance_is_found(index: Index) -> None:
    item = make_instance(1)

    index.record_instance(item)

    assert index.find_instance(item.sop_instance_uid) == StoredInstance(
        sop_instance_uid=item.sop_instance_uid,
        series_instance_uid=SERIES,
        file_path=item.file_path,
        sha256=item.sha256,
        received_sha256=item.received_sha256,
    )


def test_unknown_instance_is_not_found(index: Index) -> None:
    index.record_instance(make_instance(1))

    assert index.find_instance("1.2.3.4.5.404") is None


def test_instance_count_counts_recorded_instances(index: Index) -> None:
    for number in range(1, 4):
        index.record_instance(make_instance(number))

    assert index.instance_count() == 3


def test_series_summary_describes_the_series(index: Index) -> None:
    for number in range(1, 4):
        index.record_instance(make_instance(number))

    summary = index.series_summary(SERIES)

    assert summary is not None
    assert summary.series_instance_uid == SERIES
    assert summary.study_instance_uid == STUDY
    assert summary.modality == "CT"
    assert summary.series_number == 2
    assert summary.series_description == "Axial 1mm"
    assert summary.body_part_examined == "CHEST"
    assert summary.instance_count == 3
    assert summary.first_received_at == T0 + timedelta(seconds=1)
    assert summary.last_received_at == T0 + timedelta(seconds=3)


def test_series_summary_times_are_timezone_aware_utc(index: Index) -> None:
    index.record_instance(make_instance(1))

    summary = index.series_summary(SERIES)

    assert summary is not None
    for moment in (summary.first_received_at, summary.last_received_at):
        assert moment.tzinfo is not None
        assert moment.utcoffset() is not None
        assert moment.astimezone(UTC) == T0 + timedelta(seconds=1)


def test_series_summary_of_unknown_series_is_none(index: Index) -> None:
    index.record_instance(make_instance(1))

    assert index.series_summary("1.2.3.4.5.404") is None


def test_last_received_at_does_not_go_back_when_an_older_receipt_commits_late(
    index: Index,
) -> None:
    # Concurrent associations take `received_at` before they commit, so commits can arrive
    # out of order; the series must still report the earliest and latest receipt.
    index.record_instance(make_instance(2, received_at=T0 + timedelta(seconds=2)))
    index.record_instance(make_instance(1, received_at=T0 + timedelta(seconds=1)))

    summary = index.series_summary(SERIES)

    assert summary is not None
    assert summary.first_received_at == T0 + timedelta(seconds=1)
    assert summary.last_received_at == T0 + timedelta(seconds=2)


def test_list_studies_returns_newest_study_first(index: Index) -> None:
    for number in range(3):
        study = f"{STUDY}{number}"
        index.record_instance(
            make_instance(
                1, study=study, series=f"{study}.1", received_at=T0 + timedelta(hours=number)
            )
        )

    total, studies = index.list_studies(limit=10, offset=0)

    assert total == 3
    assert [study.study_instance_uid for study in studies] == [
        f"{STUDY}2",
        f"{STUDY}1",
        f"{STUDY}0",
    ]
    assert studies[0].study_date == "20240501"
    assert studies[0].study_description == "CT Chest"
    assert studies[0].accession_number == "ACC1"
    assert studies[0].patient_id == "PAT001"
    assert studies[0].series_count == 1
    assert studies[0].instance_count == 1


def test_list_studies_pages_with_limit_and_offset(index: Index) -> None:
    for number in range(5):
        study = f"{STUDY}{number}"
        index.record_instance(
            make_instance(
                1, study=study, series=f"{study}.1", received_at=T0 + timedelta(hours=number)
            )
        )

    total, page = index.list_studies(limit=2, offset=2)
    _, last_page = index.list_studies(limit=2, offset=4)
    _, beyond = index.list_studies(limit=2, offset=5)

    assert total == 5
    assert [study.study_instance_uid for study in page] == [f"{STUDY}2", f"{STUDY}1"]
    assert [study.study_instance_uid for study in last_page] == [f"{STUDY}0"]
    assert beyond == []


def test_list_studies_of_empty_index_is_empty(index: Index) -> None:
    assert index.list_studies(limit=10, offset=0) == (0, [])


def test_rerecording_an_instance_updates_its_row(index: Index) -> None:
    index.record_instance(make_instance(1))
    resent = make_instance(
        1, sha256="ab" * 32, received_sha256="ef" * 32, file_path="elsewhere/resent.dcm"
    )

    index.record_instance(resent)

    found = index.find_instance(resent.sop_instance_uid)
    assert found is not None
    assert (found.sha256, found.received_sha256, found.file_path) == (
        "ab" * 32,
        "ef" * 32,
        "elsewhere/resent.dcm",
    )
    assert index.instance_count() == 1


def test_rerecording_with_superseded_file_keeps_the_old_version(
    index: Index, index_url: str
) -> None:
    first = make_instance(1)
    index.record_instance(first)
    replaced_at = T0 + timedelta(minutes=5)
    superseded = SupersededFile(
        sop_instance_uid=first.sop_instance_uid,
        file_path="superseded/old.dcm",
        sha256=first.sha256,
        superseded_at=replaced_at,
    )

    index.record_instance(make_instance(1, sha256="cd" * 32), superseded=superseded)

    engine = create_engine(index_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(SupersededFileRow)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0].sop_instance_uid == first.sop_instance_uid
    assert rows[0].file_path == "superseded/old.dcm"
    assert rows[0].sha256 == first.sha256
    assert index.instance_count() == 1


def test_two_series_in_one_study_share_the_study(index: Index) -> None:
    index.record_instance(make_instance(1, series=f"{STUDY}.1"))
    index.record_instance(make_instance(1, series=f"{STUDY}.2"))
    index.record_instance(make_instance(2, series=f"{STUDY}.2"))

    total, studies = index.list_studies(limit=10, offset=0)

    assert total == 1
    assert (studies[0].series_count, studies[0].instance_count) == (2, 3)
    for series, expected in ((f"{STUDY}.1", 1), (f"{STUDY}.2", 2)):
        summary = index.series_summary(series)
        assert summary is not None
        assert (summary.study_instance_uid, summary.instance_count) == (STUDY, expected)


def test_two_studies_of_one_patient_share_the_patient_row(index: Index, index_url: str) -> None:
    for study in (f"{STUDY}1", f"{STUDY}2"):
        index.record_instance(make_instance(1, study=study, series=f"{study}.1"))

    total, studies = index.list_studies(limit=10, offset=0)

    assert total == 2
    assert {study.patient_id for study in studies} == {"PAT001"}
    assert count_rows(index_url, PatientRow) == 1


def test_patients_are_told_apart_by_patient_key(index: Index, index_url: str) -> None:
    index.record_instance(make_instance(1, study=f"{STUDY}1", series=f"{STUDY}1.1"))
    index.record_instance(
        make_instance(1, study=f"{STUDY}2", series=f"{STUDY}2.1", patient_key="PAT002^^^ISSUER")
    )

    _, studies = index.list_studies(limit=10, offset=0)

    assert count_rows(index_url, PatientRow) == 2
    assert {study.patient_id for study in studies} == {"PAT001", "PAT002"}


def test_concurrent_writers_create_one_series_study_and_patient(
    index: Index, index_url: str
) -> None:
    writers, per_writer = 4, 25
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        start.wait(timeout=30)
        for n in range(per_writer):
            index.record_instance(make_instance(1 + writer * per_writer + n))

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for future in [pool.submit(write, writer) for writer in range(writers)]:
            future.result(timeout=120)

    assert index.instance_count() == writers * per_writer
    summary = index.series_summary(SERIES)
    assert summary is not None
    assert summary.instance_count == writers * per_writer
    assert count_rows(index_url, SeriesRow) == 1
    assert count_rows(index_url, StudyRow) == 1
    assert count_rows(index_url, PatientRow) == 1


def test_recorded_rows_survive_reopening(index_url: str) -> None:
    item = make_instance(1)
    first = Index(index_url)
    first.record_instance(item)
    first.close()

    reopened = Index(index_url)
    try:
        assert reopened.find_instance(item.sop_instance_uid) is not None
    finally:
        reopened.close()


def test_ping_reaches_the_database(index: Index) -> None:
    index.ping()


def test_dialect_names_the_backend(index: Index, index_url: str) -> None:
    assert index.dialect == index_url.split(":")[0].split("+")[0]


def test_sqlite_index_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    Index(f"sqlite:///{path}").close()

    connection = sqlite3.connect(path)
    try:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    finally:
        connection.close()
    assert mode == "wal"


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        Index("mysql://user@localhost/db")
