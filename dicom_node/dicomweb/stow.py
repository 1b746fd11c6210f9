"""STOW-RS, the Studies Store transaction (PS3.18 10.5).

`POST /dicomweb/studies[/{study}]` with `Content-Type: multipart/related;
type="application/dicom"; boundary=...`; each part a PS3.10 file. The body is received whole
(bounded by http.max_request_bytes, spooled to disk when large) and parsed before anything is
stored, so a malformed (400), wrongly typed (415) or oversized (413) request stores nothing.
Each instance then goes through InstanceStore.store, the durable path C-STORE uses; the
response (application/dicom+json, PS3.18 annex I) lists it in ReferencedSOPSequence only
after its file is synced and its index row committed.

HTTP status (PS3.18 table 10.5.3-1): 200 every instance stored without warnings; 202 some
stored, and some failed or were stored with a warning (UIDs supplied by the node: 0xB000);
409 none stored. A `type` parameter other than application/dicom is 415; a request without
`type` is accepted and each part must then say application/dicom itself (or say nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts
from starlette.concurrency import run_in_threadpool

from dicom_node.dicomweb.body import ReceivedBody, receive_body, too_large
from dicom_node.dicomweb.context import DicomWebContext
from dicom_node.dicomweb.multipart import MultipartError, Part, parse_media_type, read_parts
from dicom_node.dicomweb.part10 import META_WINDOW, FileMeta, read_file_meta
from dicom_node.dicomweb.urls import service_base
from dicom_node.errors import (
    StorageError,
)
from dicom_node.http.problems import ProblemError, require_uid
from dicom_node.storage import Receipt, StoreOutcome, read_header

__all__ = ["FailureReason", "stow_routes"]

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# Instances of one request stored at the same time (each store ends with fsyncs).
STORE_THREADS = 4
_STORAGE_SOP_CLASSES = frozenset(
    str(context.abstract_syntax) for context in AllStoragePresentationContexts
)


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values, PS3.18 I.2.2 (and PS3.7 C.4 for 0x0111)."""

    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    # Also used when an instance is not of the Study named in the URL (PS3.18 allows
    # additional codes; this is the nearest standard meaning: the data does not match).
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


class WarningReason(IntEnum):
    """Warning Reason (0008,1196) values, PS3.18 I.2.1."""

    COERCION_OF_DATA_ELEMENTS = 0xB000


class _PartFailure(Exception):
    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class PartResult:
    sop_class_uid: str
    sop_instance_uid: str
    outcome: StoreOutcome | None = None
    failure: FailureReason | None = None
    detail: str = ""


def _check_content_type(header: str | None) -> str:
    """The boundary of an acceptable request Content-Type; 415 or 400 problems otherwise."""
    media = parse_media_type(header or "")
    if media is None or media.type != "multipart/related":
        raise ProblemError(
            415,
            "Unsupported media type",
            'STOW-RS takes multipart/related; type="application/dicom"',
        )
    part_type = media.get("type")
    if part_type is not None and part_type.lower() != "application/dicom":
        raise ProblemError(
            415,
            "Unsupported media type",
            "only application/dicom parts are accepted (no metadata + bulk data requests)",
        )
    boundary = media.get("boundary")
    if not boundary:
        raise ProblemError(400, "Malformed multipart body", "Content-Type has no boundary")
    return boundary


def _parse(body: ReceivedBody, boundary: str) -> list[Part]:
    try:
        return list(read_parts(body.data, boundary))
    except MultipartError as exc:
        raise ProblemError(400, "Malformed multipart body", str(exc)) from exc


class _Storer:
    """Stores the parts of one request, one after another, in a worker thread."""

    def __init__(self, context: DicomWebContext, study: str | None, source_address: str):
        self._context = context
        self._study = study
        self._source_address = source_address

    def store_all(self, body: ReceivedBody, parts: Sequence[Part]) -> list[PartResult]:
        """Results in the order of the parts; several parts are stored at once, so that one
        instance's fsync overlaps the next one's parsing and writing."""

        def store(part: Part) -> PartResult:
            return self._store_part(body, part)

        if len(parts) == 1:
            return [store(parts[0])]
        with ThreadPoolExecutor(max_workers=min(STORE_THREADS, len(parts))) as pool:
            return list(pool.map(store, parts))

    def _store_part(self, body: ReceivedBody, part: Part) -> PartResult:
        meta: FileMeta | None = None
        try:
            content_type = parse_media_type(part.content_type or "application/dicom")
            if content_type is None or content_type.type != "application/dicom":
                raise _PartFailure(FailureReason.CANNOT_UNDERSTAND, "part is not application/dicom")
            meta = read_file_meta(body.data[part.start : min(part.end, part.start + META_WINDOW)])
            dataset = body.data[part.start + meta.dataset_offset : part.end]  # the one copy
            self._check(meta, dataset)
            outcome = self._context.store.store(
                dataset,
                Receipt(
                    transfer_syntax_uid=meta.transfer_syntax_uid,
                    affected_sop_class_uid=meta.media_storage_sop_class_uid,
                    affected_sop_instance_uid=meta.media_storage_sop_instance_uid,
                    called_ae_title=self._context.ae_title,
                    source_address=self._source_address,
                ),
            )
        except _PartFailure as exc:
            return self._failed(meta, exc.reason, str(exc))
        except StorageError as exc:
            return self._failed(meta, FailureReason(exc.status), str(exc))
        except Exception:
            logger.exception("STOW-RS part failed unexpectedly")
            return self._failed(meta, FailureReason.PROCESSING_FAILURE, "internal error")
        return PartResult(
            sop_class_uid=meta.media_storage_sop_class_uid,
            sop_instance_uid=outcome.sop_instance_uid,
            outcome=outcome,
        )

    def _check(self, meta: FileMeta, dataset: bytes | bytearray) -> None:
        if not UID(meta.transfer_syntax_uid).is_transfer_syntax:
            raise _PartFailure(
                FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED, "unknown transfer syntax"
            )
        if meta.media_storage_sop_class_uid not in _STORAGE_SOP_CLASSES:
            raise _PartFailure(
                FailureReason.SOP_CLASS_NOT_SUPPORTED, "SOP Class is not a supported storage class"
            )
        if self._study is None:
            return
        header = read_header(dataset, meta.transfer_syntax_uid)
        study = header.dataset.get("StudyInstanceUID", "")
        if str(study or "").strip() != self._study:
            raise _PartFailure(
                FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                "StudyInstanceUID differs from the Study in the request URL",
            )

    @staticmethod
    def _failed(meta: FileMeta | None, reason: FailureReason, detail: str) -> PartResult:
        logger.warning("STOW-RS instance refused: 0x%04X %s", int(reason), detail)
        return PartResult(
            sop_class_uid=meta.media_storage_sop_class_uid if meta else "",
            sop_instance_uid=meta.media_storage_sop_instance_uid if meta else "",
            failure=reason,
            detail=detail,
        )


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _reference(result: PartResult) -> dict[str, Any]:
    return {
        "00081150": _element("UI", *([result.sop_class_uid] if result.sop_class_uid else [])),
        "00081155": _element("UI", *([result.sop_instance_uid] if result.sop_instance_uid else [])),
    }


def response_body(results: Sequence[PartResult], base_url: str) -> dict[str, Any]:
    """The Store Instances Response Module (PS3.18 table I.1-1) in DICOM JSON (annex F)."""
    stored = [result for result in results if result.outcome is not None]
    failed = [result for result in results if result.failure is not None]
    studies = {result.outcome.study_instance_uid for result in stored if result.outcome}
    body: dict[str, Any] = {
        "00081190": _element("UR", *(f"{base_url}/studies/{s}" for s in studies))
        if len(studies) == 1
        else _element("UR")
    }
    if failed:
        body["00081198"] = _element(
            "SQ",
            *(
                {**_reference(result), "00081197": _element("US", int(result.failure or 0))}
                for result in failed
            ),
        )
    if stored:
        items = []
        for result in stored:
            outcome = result.outcome
            assert outcome is not None
            item = _reference(result)
            item["00081190"] = _element(
                "UR",
                f"{base_url}/studies/{outcome.study_instance_uid}"
                f"/series/{outcome.series_instance_uid}/instances/{outcome.sop_instance_uid}",
            )
            if outcome.uids_repaired:
                item["00081196"] = _element("US", int(WarningReason.COERCION_OF_DATA_ELEMENTS))
            items.append(dict(sorted(item.items())))
        body["00081199"] = _element("SQ", *items)
    return body


def _status(results: Sequence[PartResult]) -> int:
    stored = [result for result in results if result.outcome is not None]
    if not stored:
        return 409
    warned = any(result.outcome and result.outcome.uids_repaired for result in stored)
    return 202 if len(stored) < len(results) or warned else 200


def stow_routes(context: DicomWebContext) -> APIRouter:
    router = APIRouter()

    async def store(request: Request, study: str | None) -> JSONResponse:
        boundary = _check_content_type(request.headers.get("content-type"))
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > context.max_request_bytes
        ):
            raise too_large(context.max_request_bytes)
        body = await receive_body(
            request.stream(),
            limit=context.max_request_bytes,
            spool_folder=context.store.area.incoming,
        )
        with body:
            parts = await run_in_threadpool(_parse, body, boundary)
            client = request.client.host if request.client else ""
            storer = _Storer(context, study, client)
            results = await run_in_threadpool(storer.store_all, body, parts)
        base_url = service_base(request)
        status = _status(results)
        logger.info(
            "STOW-RS request: %d of %d instance(s) stored",
            sum(r.outcome is not None for r in results),
            len(results),
        )
        return JSONResponse(
            response_body(results, base_url), status_code=status, media_type=DICOM_JSON
        )

    @router.post("/studies")
    async def store_instances(request: Request) -> JSONResponse:
        return await store(request, None)

    @router.post("/studies/{study_instance_uid}")
    async def store_study_instances(request: Request, study_instance_uid: str) -> JSONResponse:
        return await store(request, require_uid(study_instance_uid, "StudyInstanceUID"))

    return router
