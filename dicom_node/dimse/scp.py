"""The DIMSE SCP: C-ECHO and C-STORE on pynetdicom, with peer access control.

Handlers are registered as data and get their dependencies passed in; they never raise: every
request gets a named status (dicom_node.dimse.status) and, on failure, a short ErrorComment.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.config.models import DimseConfig, PeerConfig
from dicom_node.dimse.status import AssociateRejectReason, Status
from dicom_node.dimse.syntaxes import ACCEPTED_TRANSFER_SYNTAXES
from dicom_node.errors import (
    DuplicateInstanceError,
    InvalidInstanceError,
    OutOfResourcesError,
    SopClassMismatchError,
    StorageError,
)
from dicom_node.storage import InstanceStore, Receipt

__all__ = ["DimseServer"]

logger = logging.getLogger(__name__)

_ERROR_COMMENT_MAX = 64  # LO (PS3.5 6.2)


@dataclass
class _AssociationLog:
    peer: str
    started: float = field(default_factory=time.monotonic)
    calling_ae_title: str = ""
    called_ae_title: str = ""
    outcome: str = "open"
    echoes: int = 0
    stored: int = 0
    warnings: int = 0
    failed: int = 0
    received_bytes: int = 0


def _status(code: Status, comment: str = "") -> Dataset:
    response = Dataset()
    response.Status = int(code)
    if comment:
        response.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return response


def _failure_status(error: StorageError) -> Status:
    if isinstance(error, OutOfResourcesError):
        return Status.REFUSED_OUT_OF_RESOURCES
    if isinstance(error, SopClassMismatchError):
        return Status.ERROR_DATASET_DOES_NOT_MATCH_SOP_CLASS
    if isinstance(error, InvalidInstanceError):
        return Status.ERROR_CANNOT_UNDERSTAND
    if isinstance(error, DuplicateInstanceError):
        return Status.FAILURE_DUPLICATE_SOP_INSTANCE
    return Status.FAILURE_PROCESSING


class DimseServer:
    """Owns the pynetdicom AE and its association server."""

    def __init__(self, config: DimseConfig, ae_title: str, store: InstanceStore) -> None:
        self._config = config
        self._store = store
        self._logs: dict[int, _AssociationLog] = {}
        self._logs_lock = threading.Lock()
        # pynetdicom's per-PDU "standard" log handlers cost time and can print identifiers.
        _config.LOG_HANDLER_LEVEL = "none"
        self._ae = AE(ae_title=ae_title)
        self._ae.maximum_associations = config.max_associations
        self._ae.maximum_pdu_size = config.max_pdu_size
        self._ae.acse_timeout = config.acse_timeout_s
        self._ae.dimse_timeout = config.dimse_timeout_s
        self._ae.network_timeout = config.network_timeout_s
        transfer_syntaxes = list(ACCEPTED_TRANSFER_SYNTAXES)
        self._ae.add_supported_context(Verification, transfer_syntaxes)
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                self._ae.add_supported_context(context.abstract_syntax, transfer_syntaxes)
        self._server: ThreadedAssociationServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("DIMSE server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        handlers: Sequence[tuple[Any, ...]] = [
            (evt.EVT_CONN_OPEN, self._on_connection_open),
            (evt.EVT_REQUESTED, self._on_requested, [self._config.allowed_peers]),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_RELEASED, self._on_finished, ["released"]),
            (evt.EVT_ABORTED, self._on_finished, ["aborted"]),
            (evt.EVT_REJECTED, self._on_finished, ["rejected"]),
            (evt.EVT_CONN_CLOSE, self._on_connection_close),
            (evt.EVT_C_ECHO, self._handle_echo),
            (evt.EVT_C_STORE, self._handle_store, [self._store]),
        ]
        self._server = self._ae.start_server(
            (self._config.host, self._config.port), block=False, evt_handlers=list(handlers)
        )
        return self.address

    def stop(self, grace_s: float) -> None:
        """Stop accepting, let running associations finish for `grace_s`, then abort them."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        deadline = time.monotonic() + grace_s
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for association in server.active_associations:
            logger.warning(
                "aborting association still running at shutdown",
                extra={"peer": association.requestor.address},
            )
            association.abort()
        for association in server.active_associations:
            association.join(timeout=5)

    # --- event handlers -------------------------------------------------------------------

    def _log_for(self, event: Any) -> _AssociationLog:
        key = id(event.assoc)
        with self._logs_lock:
            entry = self._logs.get(key)
            if entry is None:
                requestor = event.assoc.requestor
                entry = _AssociationLog(peer=f"{requestor.address}:{requestor.port}")
                self._logs[key] = entry
            return entry

    def _on_connection_open(self, event: Any) -> None:
        # Without TCP_NODELAY every small PDU waits for the peer's delayed ACK (~40 ms).
        sock = event.assoc.dul.socket.socket
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._log_for(event)

    def _on_requested(self, event: Any, allowed_peers: list[PeerConfig] | None) -> None:
        association = event.assoc
        calling = association.requestor.primitive.calling_ae_title.strip()
        entry = self._log_for(event)
        entry.calling_ae_title = calling
        entry.called_ae_title = association.requestor.primitive.called_ae_title.strip()
        if allowed_peers is None:
            return
        address = association.requestor.address
        if any(peer.admits(calling, address) for peer in allowed_peers):
            return
        known = any(peer.ae_title == calling for peer in allowed_peers)
        logger.warning(
            "association rejected: %s",
            "calling AE title not allowed from this host" if known else "unknown calling AE title",
            extra={"peer": entry.peer, "calling_ae_title": calling},
        )
        association.acse.send_reject(*AssociateRejectReason.CALLING_AE_NOT_RECOGNIZED)
        entry.outcome = "rejected"
        association.kill()

    def _on_established(self, event: Any) -> None:
        self._log_for(event).outcome = "established"

    def _on_finished(self, event: Any, outcome: str) -> None:
        self._log_for(event).outcome = outcome

    def _on_connection_close(self, event: Any) -> None:
        with self._logs_lock:
            entry = self._logs.pop(id(event.assoc), None)
        if entry is None:
            return
        duration = time.monotonic() - entry.started
        logger.info(
            "association %s peer=%s calling=%s called=%s echo=%d stored=%d warnings=%d"
            " failed=%d bytes=%d duration=%.3fs",
            entry.outcome,
            entry.peer,
            entry.calling_ae_title,
            entry.called_ae_title,
            entry.echoes,
            entry.stored,
            entry.warnings,
            entry.failed,
            entry.received_bytes,
            duration,
            extra={"peer": entry.peer, "calling_ae_title": entry.calling_ae_title},
        )

    def _handle_echo(self, event: Any) -> int:
        self._log_for(event).echoes += 1
        return int(Status.SUCCESS)

    def _handle_store(self, event: Any, store: InstanceStore) -> Dataset:
        entry = self._log_for(event)
        try:
            request = event.request
            encoded = request.DataSet.getvalue()
            entry.received_bytes += len(encoded)
            association = event.assoc
            receipt = Receipt(
                transfer_syntax_uid=str(event.context.transfer_syntax),
                affected_sop_class_uid=str(request.AffectedSOPClassUID or ""),
                affected_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
                calling_ae_title=association.requestor.ae_title.strip(),
                called_ae_title=association.acceptor.ae_title.strip(),
                source_address=str(association.requestor.address),
            )
            outcome = store.store(encoded, receipt)
        except StorageError as exc:
            entry.failed += 1
            logger.warning("C-STORE refused: %s", exc, extra={"peer": entry.peer})
            return _status(_failure_status(exc), str(exc))
        except Exception:
            entry.failed += 1
            logger.exception("C-STORE failed unexpectedly", extra={"peer": entry.peer})
            return _status(Status.FAILURE_PROCESSING, "internal error while storing")
        if outcome.uids_repaired:
            entry.warnings += 1
            return _status(
                Status.WARNING_COERCION_OF_DATA_ELEMENTS,
                "node supplied " + ",".join(k.removesuffix("UID") for k in outcome.uids_repaired),
            )
        entry.stored += 1
        return _status(Status.SUCCESS)
