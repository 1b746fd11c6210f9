"""Index tables: patient -> study -> series -> instance (SQLAlchemy 2 declarative).

The columns are the attributes a Q/R SCP (PS3.4 C.6 keys) and QIDO-RS (PS3.18 10.6) answer from.
File paths are relative to the storage root so that a storage folder can be moved whole.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "InstanceRow", "PatientRow", "SeriesRow", "StudyRow", "SupersededFileRow"]

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


Index("ix_series_last_received", SeriesRow.last_received_at)
