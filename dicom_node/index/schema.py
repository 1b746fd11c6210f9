"""Index tables: patient -> study -> series -> instance (SQLAlchemy 2 declarative).

The columns are the attributes a Q/R SCP (PS3.4 C.6 keys) and QIDO-RS (PS3.18 10.6) answer from.
File paths are relative to the storage root so that a storage folder can be moved whole.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "DeliveryRow",
    "InstanceRow",
    "JobRow",
    "PatientRow",
    "SeriesRow",
    "StudyRow",
    "SupersededFileRow",
]

UID = String(64)


class Base(DeclarativeBase):
    pass


class PatientRow(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # PatientID + IssuerOfPatientID, or name + birth date when the ID is empty (anonymised data).
    patient_key: Mapped[str] = mapped_column(String(400), unique=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="", index=True)
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")


class StudyRow(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeriesRow(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    body_part_examined: Mapped[str] = mapped_column(String(16), default="")
    series_date: Mapped[str] = mapped_column(String(8), default="")
    series_time: Mapped[str] = mapped_column(String(16), default="")
    protocol_name: Mapped[str] = mapped_column(String(64), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")
    frame_of_reference_uid: Mapped[str] = mapped_column(String(64), default="")
    first_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "received" from peers, or "result": written by the node itself (never routed again).
    origin: Mapped[str] = mapped_column(String(16), default="received")
    # Completion (dicom_node.series.completion): when the series was last handed to routing,
    # why, and how many instances the data said to expect (None: the data does not say).
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Instances written to the series so far, and how many had been when it was handed over:
    # a series is pending while receipts > ready_receipts (clock-free, so no race).
    receipts: Mapped[int] = mapped_column(Integer, default=0)
    ready_receipts: Mapped[int] = mapped_column(Integer, default=0)
    ready_reason: Mapped[str] = mapped_column(String(32), default="")
    ready_count: Mapped[int] = mapped_column(Integer, default=0)
    expected_instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expected_from: Mapped[str] = mapped_column(String(128), default="")


class InstanceRow(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number_of_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_path: Mapped[str] = mapped_column(String(400))
    file_size: Mapped[int] = mapped_column(BigInteger)
    # sha256 of the stored dataset (the bytes after the file meta) ...
    sha256: Mapped[str] = mapped_column(String(64))
    # ... and of the dataset as the peer sent it: differs only when UIDs were repaired.
    received_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    calling_ae_title: Mapped[str] = mapped_column(String(16), default="")
    called_ae_title: Mapped[str] = mapped_column(String(16), default="")
    source_address: Mapped[str] = mapped_column(String(64), default="")
    # Set when the node repaired missing UIDs (storage.missing_uids: repair).
    uids_repaired: Mapped[bool] = mapped_column(default=False)


class SupersededFileRow(Base):
    """A previous version of an instance kept when a re-send with other bytes replaced it."""

    __tablename__ = "superseded_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    file_path: Mapped[str] = mapped_column(String(400))
    sha256: Mapped[str] = mapped_column(String(64))
    superseded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRow(Base):
    """One pipeline run for one route decision (dicom_node.jobs)."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha256 of series + pipeline + pipeline version + series content: one run per content.
    job_key: Mapped[str] = mapped_column(String(64), unique=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    pipeline: Mapped[str] = mapped_column(String(64))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))
    instance_count: Mapped[int] = mapped_column(Integer)
    routes: Mapped[str] = mapped_column(Text)  # JSON list of route names
    send_to: Mapped[str] = mapped_column(Text)  # JSON list of destination names
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Seconds per stage of the last run (JSON object), and the results it stored.
    timings: Mapped[str] = mapped_column(Text, default="{}")
    result_instances: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of SOP UIDs
    # Which process runs it (a lease: a crash leaves it "running" until the next start).
    worker: Mapped[str] = mapped_column(String(64), default="")


class DeliveryRow(Base):
    """An outbox entry: a job's results owed to one destination (dicom_node.dispatch)."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    sop_instance_uids: Mapped[str] = mapped_column(Text)  # JSON list
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, sent, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


Index("ix_series_last_received", SeriesRow.last_received_at)
Index("ix_job_queue", JobRow.state, JobRow.next_attempt_at)
Index("ix_delivery_queue", DeliveryRow.state, DeliveryRow.next_attempt_at)
