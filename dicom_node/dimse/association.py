"""One association as acceptor: negotiate, then receive DIMSE messages and answer each.

A plain blocking loop per association thread: read a PDU, collect its presentation data
values into a command and (optionally) a dataset, call the handler registered for the
command, send the response. No polling, no hand-offs between threads (PS3.7 section 9,
PS3.8 section 9).

C-ECHO and C-STORE handlers return their one response (the ingest fast path). C-FIND,
C-MOVE and C-GET are services: they get a ServiceExchange (dicom_node.dimse.exchange) to
send several responses, notice a C-CANCEL-RQ and run C-STORE sub-operations on the same
association, and send their final response themselves.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from dicom_node.dimse import pdu
from dicom_node.dimse.commands import (
    C_CANCEL_RQ,
    Command,
    CommandError,
    decode_command,
    encode_response,
)
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.negotiation import AcceptorPolicy, Negotiated, negotiate
from dicom_node.dimse.status import Status

__all__ = [
    "AssociationLog",
    "CommandField",
    "DimseRequest",
    "Handler",
    "Reply",
    "ServiceHandler",
    "serve_association",
]

logger = logging.getLogger(__name__)

_UNRECOGNIZED_OPERATION = 0x0211  # PS3.7 C.4.5


class CommandField(IntEnum):
    """PS3.7 E.1: request command fields (a response sets bit 15)."""

    C_STORE_RQ = 0x0001
    C_GET_RQ = 0x0010
    C_FIND_RQ = 0x0020
    C_MOVE_RQ = 0x0021
    C_ECHO_RQ = 0x0030


@dataclass(frozen=True)
class Reply:
    """The status fields of a response (PS3.7 C): Status and, optionally, Error Comment."""

    status: int
    error_comment: str = ""


@dataclass(frozen=True)
class DimseRequest:
    command: Command
    dataset: bytes | None
    abstract_syntax: str
    transfer_syntax: str
    calling_ae_title: str
    called_ae_title: str
    address: str


Handler = Callable[[DimseRequest, "AssociationLog"], Reply]
# A service sends every response itself through the exchange, the final one included.
ServiceHandler = Callable[[DimseRequest, ServiceExchange, "AssociationLog"], None]


@dataclass
class AssociationLog:
    """What one association did; logged in one line when it ends."""

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
    finds: int = 0
    moves: int = 0
    gets: int = 0
    # C-MOVE/C-GET sub-operations that completed (success or warning) / failed.
    sub_completed: int = 0
    sub_failed: int = 0
    sent_bytes: int = 0

    def emit(self) -> None:
        logger.info(
            "association %s peer=%s calling=%s called=%s echo=%d stored=%d warnings=%d"
            " failed=%d bytes=%d find=%d move=%d get=%d sub_completed=%d sub_failed=%d"
            " sent_bytes=%d duration=%.3fs",
            self.outcome,
            self.peer,
            self.calling_ae_title,
            self.called_ae_title,
            self.echoes,
            self.stored,
            self.warnings,
            self.failed,
            self.received_bytes,
            self.finds,
            self.moves,
            self.gets,
            self.sub_completed,
            self.sub_failed,
            self.sent_bytes,
            time.monotonic() - self.started,
            extra={"peer": self.peer, "calling_ae_title": self.calling_ae_title},
        )


class _Session:
    def __init__(
        self,
        sock: socket.socket,
        negotiated: Negotiated,
        handlers: Mapping[int, Handler],
        services: Mapping[int, ServiceHandler],
        record: AssociationLog,
        address: str,
        max_pdu: int,
    ) -> None:
        self.sock = sock
        self.negotiated = negotiated
        self.handlers = handlers
        self.services = services
        self.record = record
        self.address = address
        self.max_pdu = max_pdu
        self.command = bytearray()
        self.command_set: Command | None = None
        # Fragments of the dataset being received, joined once when the last one arrives.
        self.fragments: list[memoryview] = []
        self.context_id = 0

    def run(self) -> None:
        while True:
            pdu_type, body = pdu.read_pdu(self.sock, self.max_pdu)
            if pdu_type == pdu.P_DATA_TF:
                self._p_data(body)
            elif pdu_type == pdu.A_RELEASE_RQ:
                self.sock.sendall(pdu.release_rp_pdu())
                self.record.outcome = "released"
                return
            elif pdu_type == pdu.A_ABORT:
                self.record.outcome = "aborted"
                return
            else:
                self.sock.sendall(pdu.abort_pdu(0x02, 0x02))  # unexpected PDU
                self.record.outcome = "aborted"
                return

    def _p_data(self, body: bytearray) -> None:
        for value in pdu.iter_pdvs(body):
            if value.context_id not in self.negotiated.contexts:
                raise pdu.PduError(f"presentation context {value.context_id} was not accepted")
            self.context_id = value.context_id
            if value.is_command:
                self.command += value.data
                if value.is_last:
                    self.command_set = decode_command(self.command)
                    self.command.clear()
                    if not self.command_set.has_data_set:
                        self._dispatch(None)
            else:
                if self.command_set is None:
                    raise pdu.PduError("dataset fragment before its command")
                self.fragments.append(value.data)
                if value.is_last:
                    dataset = b"".join(self.fragments)
                    self.fragments.clear()
                    self.record.received_bytes += len(dataset)
                    self._dispatch(dataset)

    def _dispatch(self, dataset: bytes | None) -> None:
        command = self.command_set
        assert command is not None
        self.command_set = None
        handler = self.handlers.get(command.command_field)
        if handler is None:
            service = self.services.get(command.command_field)
            if service is not None:
                self._serve(service, self._request(command, dataset))
                return
            if command.command_field == C_CANCEL_RQ:
                # Nothing outstanding to cancel (it ended already): no response (PS3.7 9.3.2.3).
                return
            reply = Reply(_UNRECOGNIZED_OPERATION)
        else:
            reply = handler(self._request(command, dataset), self.record)
        encoded = encode_response(command, reply.status, reply.error_comment)
        for message in pdu.p_data_pdus(self.context_id, encoded, self.negotiated.peer_max_pdu):
            self.sock.sendall(message)

    def _request(self, command: Command, dataset: bytes | None) -> DimseRequest:
        abstract_syntax, transfer_syntax = self.negotiated.contexts[self.context_id]
        return DimseRequest(
            command=command,
            dataset=dataset,
            abstract_syntax=abstract_syntax,
            transfer_syntax=transfer_syntax,
            calling_ae_title=self.negotiated.calling_ae_title,
            called_ae_title=self.negotiated.called_ae_title,
            address=self.address,
        )

    def _serve(self, service: ServiceHandler, request: DimseRequest) -> None:
        command = request.command
        exchange = ServiceExchange(
            self.sock, self.negotiated, command, self.context_id, self.max_pdu
        )
        try:
            service(request, exchange, self.record)
        except (pdu.PduError, CommandError, OSError):
            raise
        except Exception:
            logger.exception(
                "DIMSE service 0x%04X failed unexpectedly",
                command.command_field,
                extra={"peer": self.record.peer},
            )
        finally:
            self.record.sent_bytes += exchange.sent_bytes
        if not exchange.finished:
            exchange.respond(
                Status.FAILURE_UNABLE_TO_PROCESS_INTERNAL_ERROR, error_comment="internal error"
            )


def serve_association(
    sock: socket.socket,
    address: tuple[str, int],
    policy: AcceptorPolicy,
    handlers: Mapping[int, Handler],
    *,
    services: Mapping[int, ServiceHandler] | None = None,
    at_capacity: Callable[[], bool],
    acse_timeout_s: float,
    network_timeout_s: float,
) -> None:
    """Run one association on an accepted socket until release, abort or error; never raises."""
    record = AssociationLog(peer=f"{address[0]}:{address[1]}")
    try:
        sock.settimeout(acse_timeout_s)
        pdu_type, body = pdu.read_pdu(sock, 0)
        if pdu_type != pdu.A_ASSOCIATE_RQ:
            sock.sendall(pdu.abort_pdu(0x02, 0x02))
            record.outcome = "aborted"
            return
        request = len(body).to_bytes(4, "big")
        negotiated = negotiate(
            b"\x01\x00" + request + bytes(body), address[0], policy, at_capacity()
        )
        record.calling_ae_title = negotiated.calling_ae_title
        record.called_ae_title = negotiated.called_ae_title
        sock.sendall(negotiated.reply)
        if not negotiated.accepted:
            record.outcome = "rejected"
            logger.warning(
                "association rejected: %s",
                negotiated.reason,
                extra={"peer": record.peer, "calling_ae_title": record.calling_ae_title},
            )
            return
        record.outcome = "established"
        sock.settimeout(network_timeout_s)
        _Session(
            sock, negotiated, handlers, services or {}, record, address[0], policy.max_pdu_size
        ).run()
    except (pdu.PduError, CommandError, OSError, ValueError, KeyError) as exc:
        if record.outcome in ("open", "established"):
            record.outcome = "aborted"
            logger.warning(
                "association aborted: %s", type(exc).__name__, extra={"peer": record.peer}
            )
            with contextlib.suppress(OSError):
                sock.sendall(pdu.abort_pdu(0x02, 0x00))
    finally:
        try:
            sock.close()
        finally:
            record.emit()
