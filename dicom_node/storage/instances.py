"""Storing one received instance: check it, place the file durably, commit the index row.

This is the only path by which an instance enters the node (C-STORE today, STOW-RS later).
When `InstanceStore.store` returns, the file is fsynced in place and its index row committed;
any failure raises a StorageError subclass and leaves neither a partial file nor a row.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from dicom_node import __version__
from dicom_node.config.models import DuplicatePolicy, MissingUidPolicy, StorageConfig
from dicom_node.errors import (
    DuplicateInstanceError,
    InvalidInstanceError,
    OutOfResourcesError,
    SopClassMismatchError,
    StorageError,
)
from dicom_node.fs import StripedLocks
from dicom_node.index import Index, IndexedInstance, StoredInstance, SupersededFile
from dicom_node.storage.files import Placement, StorageArea
from dicom_node.storage.inspection import read_header
from dicom_node.storage.part10 import PREAMBLE, dataset_sha256, encode_file_meta
from dicom_node.uids import derive_uid, is_valid_uid

__all__ = ["Disposition", "InstanceStore", "Receipt", "StoreOutcome"]

logger = logging.getLogger(__name__)

# Our Implementation Class UID (PS3.7 D.3.3.2): derived once from the product name.
IMPLEMENTATION_CLASS_UID = derive_uid("dicom-node", "implementation")
IMPLEMENTATION_VERSION_NAME = f"DICOMNODE_{__version__}"[:16]


@dataclass(frozen=True)
class Receipt:
    """How an instance arrived: the negotiated encoding and who sent it."""

    transfer_syntax_uid: str
    affected_sop_class_uid: str = ""
    affected_sop_instance_uid: str = ""
    calling_ae_title: str = ""
    called_ae_title: str = ""
    source_address: str = ""
    origin: str = "received"  # "result": the node's own output (never routed again)


class Disposition(StrEnum):
    STORED = "stored"  # new instance
    UNCHANGED = "unchanged"  # re-sent with identical bytes; nothing written
    REPLACED = "replaced"  # re-sent with other bytes; previous version kept


@dataclass(frozen=True)
class StoreOutcome:
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    disposition: Disposition
    uids_repaired: tuple[str, ...] = ()  # keywords whose values the node supplied


# Character sets whose text values decode with a single Python codec (PS3.5 6.1.2.3).
_SINGLE_BYTE_OR_UTF8 = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf_8",
}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI"}
_SPECIFIC_CHARACTER_SET = 0x00080005


@functools.cache
def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return BaseTag(tag)


def _raw_text(dataset: Dataset, item: RawDataElement | DataElement) -> str | None:
    """A text value straight from its raw bytes, skipping pydicom's element conversion (the
    bulk of the per-instance CPU); None when only pydicom's full decoding will do."""
    if not isinstance(item, RawDataElement) or item.VR not in _TEXT_VRS:
        return None
    charset_item = dataset.get_item(_SPECIFIC_CHARACTER_SET)
    if charset_item is None:
        charset = ""
    elif isinstance(charset_item, RawDataElement):
        charset = bytes(charset_item.value or b"").decode("ascii", "replace").strip(" \x00")
    else:
        return None
    codec = _SINGLE_BYTE_OR_UTF8.get(charset)
    if codec is None:
        return None
    return bytes(item.value or b"").decode(codec, "replace").strip(" \x00")


def _text(dataset: Dataset, keyword: str) -> str:
    item = dataset.get_item(_tag(keyword))
    if item is None:
        return ""
    fast = _raw_text(dataset, item)
    if fast is not None:
        return fast
    value = dataset[_tag(keyword)].value
    return "" if value is None else str(value).strip()


def _integer(dataset: Dataset, keyword: str) -> int | None:
    try:
        text = _text(dataset, keyword)
        return int(text) if text else None
    except ValueError:
        return None


_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class InstanceStore:
    def __init__(
        self,
        area: StorageArea,
        index: Index,
        *,
        on_duplicate: DuplicatePolicy,
        missing_uids: MissingUidPolicy,
    ) -> None:
        self._area = area
        self._index = index
        self._on_duplicate = on_duplicate
        self._missing_uids = missing_uids
        # Per-instance locks shared with the other DIMSE worker processes.
        self._locks = StripedLocks(area.root / ".locks")

    @classmethod
    def from_config(cls, config: StorageConfig, index: Index) -> InstanceStore:
        area = StorageArea(
            root=config.path, min_free_bytes=config.min_free_bytes, fsync=config.fsync
        )
        return cls(area, index, on_duplicate=config.on_duplicate, missing_uids=config.missing_uids)

    @property
    def area(self) -> StorageArea:
        return self._area

    def close(self) -> None:
        self._locks.close()

    def store(self, encoded_dataset: bytes | bytearray, receipt: Receipt) -> StoreOutcome:
        """Store the dataset `encoded_dataset` (no preamble/meta) exactly as received."""
        header = read_header(encoded_dataset, receipt.transfer_syntax_uid)
        dataset = header.dataset
        # Re-sends are recognised by what the peer sent, so a repaired instance is idempotent too.
        received_digest = hashlib.sha256(encoded_dataset).hexdigest()
        repaired = self._resolve_uids(dataset, receipt)
        if repaired:
            encoded_dataset = self._encode_repaired(dataset, header.transfer_syntax_uid, repaired)
        sop_instance_uid = _text(dataset, "SOPInstanceUID")
        relative = self._area.instance_path(
            _text(dataset, "StudyInstanceUID"),
            _text(dataset, "SeriesInstanceUID"),
            sop_instance_uid,
        )
        digest = hashlib.sha256(encoded_dataset).hexdigest() if repaired else received_digest
        file_parts = self._file_parts(dataset, header.transfer_syntax_uid, receipt, encoded_dataset)
        file_size = sum(len(part) for part in file_parts)
        now = datetime.now(UTC)
        with self._locks.held(sop_instance_uid):
            existing = self._index.find_instance(sop_instance_uid)
            if (
                existing is not None
                and existing.received_sha256 == received_digest
                and self._area.absolute(existing.file_path).is_file()
            ):
                return self._outcome(dataset, Disposition.UNCHANGED, repaired)
            if existing is not None and self._on_duplicate is DuplicatePolicy.REJECT:
                raise DuplicateInstanceError(
                    "SOP Instance already stored with different content; policy keeps the first"
                )
            self._area.check_free_space(file_size)
            superseded = None
            if existing is not None:
                superseded = SupersededFile(
                    sop_instance_uid=sop_instance_uid,
                    file_path=str(self._area.superseded_path(sop_instance_uid, now)),
                    sha256=existing.sha256,
                    superseded_at=now,
                )
                self._area.keep(existing.file_path, PurePosixPath(superseded.file_path))
            placement: Placement | None = None
            try:
                placement = self._area.place(relative, file_parts)
                self._index.record_instance(
                    self._describe(
                        dataset,
                        header.transfer_syntax_uid,
                        receipt,
                        relative,
                        file_size,
                        (digest, received_digest),
                        now,
                        repaired,
                    ),
                    superseded,
                    durable_first=self._area.folders_to_sync(relative),
                )
            except SQLAlchemyError as exc:
                self._undo(placement, existing, superseded)
                # The index shares the disk-full meaning of storage; anything else is local.
                if "full" in str(exc.orig if isinstance(exc, DBAPIError) else exc).lower():
                    raise OutOfResourcesError("index database full") from exc
                raise StorageError("index database write failed") from exc
            except BaseException:
                self._undo(placement, existing, superseded)
                raise
            self._area.settle(placement)
            if existing is not None and existing.file_path != str(relative):
                # Same instance re-sent under another series: the old path is now a stale copy.
                self._area.remove(existing.file_path)
        disposition = Disposition.STORED if existing is None else Disposition.REPLACED
        return self._outcome(dataset, disposition, repaired)

    def store_dataset(self, dataset: Dataset, receipt: Receipt) -> StoreOutcome:
        """Store a dataset the node made itself (a SEG, an SR) through the same durable path,
        encoded in `receipt.transfer_syntax_uid` (an uncompressed syntax)."""
        syntax = UID(receipt.transfer_syntax_uid)
        if syntax.is_compressed or syntax.is_deflated:
            raise ValueError(f"store_dataset encodes uncompressed syntaxes only, not {syntax}")
        buffer = DicomBytesIO()
        buffer.is_little_endian = syntax.is_little_endian
        buffer.is_implicit_VR = syntax.is_implicit_VR
        write_dataset(buffer, dataset)  # the dataset alone: store() writes its own File Meta
        return self.store(buffer.getvalue(), receipt)

    def _undo(
        self,
        placement: Placement | None,
        existing: StoredInstance | None,
        superseded: SupersededFile | None,
    ) -> None:
        """Put storage back as the index has it after a failed store."""
        if placement is not None:
            self._revert(placement, existing, superseded.file_path if superseded else None)
        elif superseded is not None:
            self._area.remove(superseded.file_path)

    def _revert(
        self, placement: Placement, existing: StoredInstance | None, kept_path: str | None
    ) -> None:
        if self._area.holds(placement):
            if existing is not None and kept_path and existing.file_path == str(placement.relative):
                self._area.restore(PurePosixPath(kept_path), existing.file_path)
                kept_path = None
            else:
                self._area.remove(placement.relative)
        if kept_path:
            self._area.remove(kept_path)
        self._area.settle(placement)

    def recover(self) -> int:
        """Undo placements a crash left between the file rename and the index commit, so no
        file in storage is missing from the index; return how many were undone."""
        undone = 0
        for placement in self._area.journals():
            if not self._area.holds(placement):
                self._area.settle(placement)  # crashed before the rename: target untouched
                continue
            sop_instance_uid = placement.relative.stem
            existing = self._index.find_instance(sop_instance_uid)
            committed = (
                existing is not None
                and existing.file_path == str(placement.relative)
                and existing.sha256 == dataset_sha256(placement.journal.read_bytes())
            )
            if committed:
                self._area.settle(placement)
                continue
            kept = None
            if existing is not None and existing.file_path == str(placement.relative):
                kept = self._area.find_kept(sop_instance_uid, existing.sha256, dataset_sha256)
            self._revert(placement, existing, kept)
            undone += 1
            logger.warning(
                "undid an instance written but not indexed before a crash",
                extra={"path": str(placement.relative)},
            )
        return undone

    @staticmethod
    def _outcome(
        dataset: Dataset, disposition: Disposition, repaired: tuple[str, ...]
    ) -> StoreOutcome:
        return StoreOutcome(
            sop_instance_uid=_text(dataset, "SOPInstanceUID"),
            series_instance_uid=_text(dataset, "SeriesInstanceUID"),
            study_instance_uid=_text(dataset, "StudyInstanceUID"),
            disposition=disposition,
            uids_repaired=repaired,
        )

    def _resolve_uids(self, dataset: Dataset, receipt: Receipt) -> tuple[str, ...]:
        """Check the identifying UIDs; apply `storage.missing_uids` to empty ones.

        Returns the keywords the node filled in (empty unless the policy is repair).
        """
        try:
            values = {keyword: _text(dataset, keyword) for keyword in _IDENTIFYING}
        except (ValueError, TypeError, LookupError) as exc:
            raise InvalidInstanceError(f"identifying UIDs do not decode: {exc}") from exc
        missing = tuple(keyword for keyword, value in values.items() if not value)
        if missing and self._missing_uids is MissingUidPolicy.REFUSE:
            raise InvalidInstanceError(
                f"missing {', '.join(missing)} (node policy storage.missing_uids: refuse)"
            )
        if missing:
            self._repair(dataset, values, missing, receipt)
        for keyword in _IDENTIFYING:
            if not is_valid_uid(values[keyword]):
                raise InvalidInstanceError(f"{keyword} is not a valid UID")
        requested_class = receipt.affected_sop_class_uid.strip()
        if requested_class and requested_class != values["SOPClassUID"]:
            raise SopClassMismatchError("SOP Class UID in the dataset differs from the request")
        requested_instance = receipt.affected_sop_instance_uid.strip()
        if requested_instance and requested_instance != values["SOPInstanceUID"]:
            raise InvalidInstanceError("SOP Instance UID in the dataset differs from the request")
        return missing

    @staticmethod
    def _repair(
        dataset: Dataset, values: dict[str, str], missing: tuple[str, ...], receipt: Receipt
    ) -> None:
        """Fill empty UIDs: SOP UIDs from the request (what the sender says it sent), Study and
        Series UIDs derived deterministically from the attributes that identify them, so every
        instance of one anonymised series lands in the same derived series, every time."""
        originals = Dataset()
        for keyword in missing:
            setattr(originals, keyword, dataset.get(keyword, ""))
        if "SOPClassUID" in missing:
            values["SOPClassUID"] = receipt.affected_sop_class_uid.strip()
        if "SOPInstanceUID" in missing:
            values["SOPInstanceUID"] = receipt.affected_sop_instance_uid.strip()
        if "StudyInstanceUID" in missing:
            values["StudyInstanceUID"] = derive_uid(
                "study",
                *(
                    _text(dataset, keyword)
                    for keyword in (
                        "PatientID",
                        "PatientName",
                        "PatientBirthDate",
                        "StudyDate",
                        "StudyTime",
                        "AccessionNumber",
                        "StudyID",
                        "StudyDescription",
                    )
                ),
            )
        if "SeriesInstanceUID" in missing:
            values["SeriesInstanceUID"] = derive_uid(
                "series",
                values["StudyInstanceUID"],
                *(
                    _text(dataset, keyword)
                    for keyword in (
                        "Modality",
                        "SeriesNumber",
                        "SeriesDate",
                        "SeriesTime",
                        "SeriesDescription",
                    )
                ),
            )
        for keyword in missing:
            if not values[keyword]:
                raise InvalidInstanceError(f"missing {keyword} in the dataset and the request")
            setattr(dataset, keyword, values[keyword])
        # PS3.3 C.12.1.1.9: record what was changed, by whom and why.
        record = Dataset()
        record.ModifiedAttributesSequence = [originals]
        record.AttributeModificationDateTime = datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f+0000")
        record.ModifyingSystem = "dicom-node"
        record.ReasonForTheAttributeModification = "COERCE"
        if receipt.calling_ae_title:
            record.SourceOfPreviousValues = receipt.calling_ae_title[:64]
        history = list(dataset.get("OriginalAttributesSequence", []))
        dataset.OriginalAttributesSequence = [*history, record]

    @staticmethod
    def _encode_repaired(dataset: Dataset, syntax: UID, repaired: tuple[str, ...]) -> bytes:
        buffer = io.BytesIO()
        dcmwrite(
            buffer,
            dataset,
            implicit_vr=syntax.is_implicit_VR,
            little_endian=syntax.is_little_endian,
            enforce_file_format=False,
        )
        encoded = buffer.getvalue()
        if syntax == DeflatedExplicitVRLittleEndian:
            compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS
            )
            encoded = compressor.compress(encoded) + compressor.flush()
        logger.info("repaired missing UIDs", extra={"repaired": repaired})
        return encoded

    @staticmethod
    def _file_parts(
        dataset: Dataset, syntax: UID, receipt: Receipt, encoded: bytes | bytearray
    ) -> tuple[bytes, bytes | bytearray]:
        """PS3.10 file: preamble and File Meta Information (7.1), then the dataset as received
        (kept apart so the write gathers them without copying the dataset)."""
        meta = encode_file_meta(
            media_storage_sop_class_uid=_text(dataset, "SOPClassUID"),
            media_storage_sop_instance_uid=_text(dataset, "SOPInstanceUID"),
            transfer_syntax_uid=str(syntax),
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION_NAME,
            source_application_entity_title=receipt.calling_ae_title,
        )
        return PREAMBLE + meta, encoded

    @staticmethod
    def _describe(
        dataset: Dataset,
        syntax: UID,
        receipt: Receipt,
        relative: PurePosixPath,
        file_size: int,
        digests: tuple[str, str],
        now: datetime,
        repaired: tuple[str, ...],
    ) -> IndexedInstance:
        patient_id = _text(dataset, "PatientID")
        issuer = _text(dataset, "IssuerOfPatientID")
        name = _text(dataset, "PatientName")
        birth_date = _text(dataset, "PatientBirthDate")
        # Anonymised data often has no Patient ID: keep such patients apart by name + birth date.
        patient_key = (
            f"id={patient_id}|issuer={issuer}" if patient_id else f"name={name}|birth={birth_date}"
        )
        return IndexedInstance(
            patient_key=patient_key,
            patient_id=patient_id,
            issuer_of_patient_id=issuer,
            patient_name=name,
            patient_birth_date=birth_date[:8],
            patient_sex=_text(dataset, "PatientSex")[:16],
            study_instance_uid=_text(dataset, "StudyInstanceUID"),
            study_date=_text(dataset, "StudyDate")[:8],
            study_time=_text(dataset, "StudyTime")[:16],
            accession_number=_text(dataset, "AccessionNumber")[:16],
            study_id=_text(dataset, "StudyID")[:16],
            study_description=_text(dataset, "StudyDescription")[:64],
            referring_physician_name=_text(dataset, "ReferringPhysicianName"),
            series_instance_uid=_text(dataset, "SeriesInstanceUID"),
            modality=_text(dataset, "Modality")[:16],
            series_number=_integer(dataset, "SeriesNumber"),
            series_description=_text(dataset, "SeriesDescription")[:64],
            body_part_examined=_text(dataset, "BodyPartExamined")[:16],
            series_date=_text(dataset, "SeriesDate")[:8],
            series_time=_text(dataset, "SeriesTime")[:16],
            protocol_name=_text(dataset, "ProtocolName")[:64],
            manufacturer=_text(dataset, "Manufacturer")[:64],
            frame_of_reference_uid=_text(dataset, "FrameOfReferenceUID")[:64],
            sop_instance_uid=_text(dataset, "SOPInstanceUID"),
            sop_class_uid=_text(dataset, "SOPClassUID"),
            instance_number=_integer(dataset, "InstanceNumber"),
            transfer_syntax_uid=str(syntax),
            rows=_integer(dataset, "Rows"),
            columns=_integer(dataset, "Columns"),
            number_of_frames=_integer(dataset, "NumberOfFrames"),
            file_path=str(relative),
            file_size=file_size,
            sha256=digests[0],
            received_sha256=digests[1],
            received_at=now,
            calling_ae_title=receipt.calling_ae_title,
            called_ae_title=receipt.called_ae_title,
            source_address=receipt.source_address,
            uids_repaired=bool(repaired),
            origin=receipt.origin,
        )
