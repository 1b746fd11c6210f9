"""Destination kind `dicomweb`: STOW-RS client (PS3.18 10.5) with httpx.

A delivery is POSTed to `{url}/studies` as `multipart/related; type="application/dicom"`, at
most `max_instances_per_request` instances per request; each part is a stored Part 10 file,
streamed from storage as stored (never decoded), with a Content-Length computed up front (some
servers refuse chunked request bodies).

Success is a 200 whose ReferencedSOPSequence names every instance of the request (PS3.18
10.5.3, Table 10.5.3-1), or a 202 that names every instance too, some with a WarningReason
(stored with coercion, like a DIMSE warning status). A FailedSOPSequence item, an instance
not confirmed, a 409 (none stored), any other status, an unreadable answer or a connection
error fails the whole delivery with the destination's failure reasons (FailureReason codes),
so the outbox retries it and dead-letters it after `max_attempts`. Requests already accepted are
sent again on the retry: a STOW-RS server answers a re-sent identical instance with success.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydicom.filereader import read_file_meta_info

from dicom_node.config.models import DicomWebDestinationConfig
from dicom_node.errors import DispatchError
from dicom_node.tls import client_context

__all__ = ["send_dicomweb"]

logger = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
_DICOM_JSON = "application/dicom+json"

# DICOM JSON tags (PS3.18 F.2) of the STOW-RS response module (PS3.18 Table 10.5.3-1).
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"
_WARNING_REASON = "00081196"

# FailureReason values (PS3.18 10.5.3; the Storage statuses of PS3.4 B.2.3 and PS3.7 C).
_FAILURE_MEANINGS = {
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0x0111: "duplicate SOP instance",
}


class _Part:
    """One body part: the boundary line and headers, then the file's bytes."""

    def __init__(self, boundary: str, path: Path) -> None:
        self.head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        self.path = path
        self.size = path.stat().st_size


def _multipart(boundary: str, parts: Sequence[_Part]) -> tuple[Iterator[bytes], int]:
    """The request body as a stream of chunks and its exact length."""
    tail = f"--{boundary}--\r\n".encode("ascii")
    length = sum(len(part.head) + part.size + 2 for part in parts) + len(tail)

    def chunks() -> Iterator[bytes]:
        for part in parts:
            yield part.head
            with part.path.open("rb") as handle:
                while chunk := handle.read(_READ_CHUNK):
                    yield chunk
            yield b"\r\n"
        yield tail

    return chunks(), length


def _auth(destination: DicomWebDestinationConfig) -> httpx.Auth | None:
    auth = destination.auth
    if auth is None:
        return None
    secret = os.environ.get(auth.secret_env)
    if not secret:
        raise DispatchError(
            f"STOW-RS to {destination.url}: environment variable {auth.secret_env} "
            "(the destination's secret) is not set"
        )
    if auth.kind == "basic":
        assert auth.username is not None
        return httpx.BasicAuth(auth.username, secret)
    return _BearerAuth(secret)


class _BearerAuth(httpx.Auth):
    """RFC 6750 2.1: the token in the Authorization header."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _sequence_items(body: Any, tag: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    element = body.get(tag)
    if not isinstance(element, dict):
        return []
    items = element.get("Value")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _first_value(item: dict[str, Any], tag: str) -> Any:
    element = item.get(tag)
    if isinstance(element, dict):
        values = element.get("Value")
        if isinstance(values, list) and values:
            return values[0]
    return None


def _failure_reasons(body: Any) -> list[str]:
    """'UID: 0xA700 out of resources' for every FailedSOPSequence item."""
    reasons = []
    for item in _sequence_items(body, _FAILED_SOP_SEQUENCE):
        uid = _first_value(item, _REFERENCED_SOP_INSTANCE_UID) or "?"
        code = _first_value(item, _FAILURE_REASON)
        if isinstance(code, int):
            meaning = _FAILURE_MEANINGS.get(code, "failure")
            reasons.append(f"{uid}: 0x{code:04X} {meaning}")
        else:
            reasons.append(f"{uid}: no FailureReason")
    return reasons


def _response_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def _summary(response: httpx.Response) -> str:
    """Short, single-line text of a non-DICOM answer (a problem detail, an HTML page)."""
    text = " ".join(response.text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _check_response(
    response: httpx.Response, sent_uids: Sequence[str], url: str, position: str
) -> int:
    """Raise DispatchError unless every sent instance is stored; return how many were stored
    with a warning (a 202 without failures: coerced, as DIMSE warning statuses)."""
    status = response.status_code
    body = _response_body(response)
    failures = _failure_reasons(body)
    where = f"STOW-RS to {url} (request {position})"
    if status not in (200, 202) or failures:
        meaning = {
            202: "some instances were not stored",
            409: "no instance was stored",
            401: "not authenticated",
            403: "not authorized",
        }.get(status, "request failed")
        details = "; ".join(failures) if failures else _summary(response)
        raise DispatchError(f"{where} answered {status} ({meaning}): {details}".rstrip(": "))
    stored = _sequence_items(body, _REFERENCED_SOP_SEQUENCE)
    referenced = {_first_value(item, _REFERENCED_SOP_INSTANCE_UID) for item in stored}
    missing = [uid for uid in sent_uids if uid not in referenced]
    if missing:
        raise DispatchError(
            f"{where} answered {status} without confirming {len(missing)} of "
            f"{len(sent_uids)} instance(s), e.g. {missing[0]}"
        )
    return sum(_WARNING_REASON in item for item in stored)


def send_dicomweb(destination: DicomWebDestinationConfig, files: Sequence[Path]) -> None:
    """Store `files` at the destination by STOW-RS, in requests of at most
    `max_instances_per_request` instances; raise DispatchError unless every one is stored."""
    url = destination.url.rstrip("/") + "/studies"
    size = destination.max_instances_per_request
    batches = [files[start : start + size] for start in range(0, len(files), size)]
    verify = client_context(destination.tls) if url.startswith("https:") else True
    try:
        client = httpx.Client(auth=_auth(destination), verify=verify, timeout=destination.timeout_s)
    except OSError as exc:  # an unreadable CA or client certificate file
        raise DispatchError(f"STOW-RS to {url}: TLS set-up failed: {exc}") from exc
    with client:
        for number, batch in enumerate(batches, start=1):
            position = f"{number}/{len(batches)}"
            uids = [str(read_file_meta_info(path).MediaStorageSOPInstanceUID) for path in batch]
            boundary = uuid.uuid4().hex
            body, length = _multipart(boundary, [_Part(boundary, path) for path in batch])
            headers = {
                "Content-Type": (
                    f'multipart/related; type="application/dicom"; boundary={boundary}'
                ),
                "Content-Length": str(length),
                "Accept": _DICOM_JSON,
            }
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise DispatchError(
                    f"STOW-RS to {url} (request {position}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            warned = _check_response(response, uids, url, position)
            logger.info(
                "STOW-RS request %s to %s: %d instance(s) stored (%d with a warning, %d bytes)",
                position,
                url,
                len(batch),
                warned,
                length,
            )
