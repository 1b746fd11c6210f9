"""The conversation of one C-FIND, C-MOVE or C-GET on its association (PS3.7 9.1.2-9.1.4).

Unlike C-ECHO and C-STORE (one request, one response), these operations answer with several
responses and may be cancelled: the requestor sends a C-CANCEL-RQ (PS3.7 9.3.2.3) on the same
association while responses are still coming. Between two responses the service polls the
socket without blocking (select with timeout 0) and reads whatever arrived. C-GET sends its
C-STORE sub-operations on the same association (PS3.4 C.4.3) and waits for each C-STORE-RSP
here, noticing a C-CANCEL-RQ that arrives meanwhile. No threads: the association's own thread
runs the service to its end.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable

from dicom_node.dimse import pdu
from dicom_node.dimse.commands import (
    C_CANCEL_RQ,
    ERROR_COMMENT,
    MESSAGE_ID_BEING_RESPONDED_TO,
    STATUS,
    Command,
    SubOperations,
    decode_command,
    encode_service_response,
    encode_store_request,
)
from dicom_node.dimse.negotiation import Negotiated

__all__ = ["ServiceExchange", "StoreAnswer"]

_C_STORE_RSP = 0x8001
_PENDING_STATUSES = (0xFF00, 0xFF01)
# Data set fragment when the peer announced no maximum PDU length (PS3.8 D.1: 0 = unlimited).
_UNLIMITED_FRAGMENT = 1024 * 1024
_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


class StoreAnswer:
    """The C-STORE-RSP to a C-GET sub-operation: status and error comment."""

    __slots__ = ("error_comment", "status")

    def __init__(self, status: int, error_comment: str) -> None:
        self.status = status
        self.error_comment = error_comment


class ServiceExchange:
    """Responses, cancel detection and C-STORE sub-operations for one request."""

    def __init__(
        self,
        sock: socket.socket,
        negotiated: Negotiated,
        command: Command,
        context_id: int,
        max_pdu: int,
    ) -> None:
        self._sock = sock
        self._negotiated = negotiated
        self._command = command
        self._context_id = context_id
        self._max_pdu = max_pdu
        self._partial = bytearray()
        self._cancelled = False
        self._store_answers: dict[int, StoreAnswer] = {}
        self._next_message_id = 0
        self.finished = False
        self.sent_bytes = 0

    @property
    def fragment_size(self) -> int:
        peer = self._negotiated.peer_max_pdu
        return peer - 6 if peer > 6 else _UNLIMITED_FRAGMENT

    def respond(
        self,
        status: int,
        *,
        error_comment: str = "",
        identifier: bytes | None = None,
        sub_operations: SubOperations | None = None,
        offending_elements: tuple[int, ...] = (),
    ) -> None:
        """Send one response; any status but Pending ends the operation."""
        if self.finished:
            raise RuntimeError("the final response was already sent")
        encoded = encode_service_response(
            self._command,
            status,
            error_comment=error_comment,
            has_data_set=identifier is not None,
            sub_operations=sub_operations,
            offending_elements=offending_elements,
        )
        for message in pdu.p_data_pdus(self._context_id, encoded, self._negotiated.peer_max_pdu):
            self._sock.sendall(message)
        if identifier is not None:
            self._send_data_set(self._context_id, (identifier,), len(identifier))
        if status not in _PENDING_STATUSES:
            self.finished = True

    def cancel_requested(self) -> bool:
        """Whether a C-CANCEL-RQ for this operation has arrived; never blocks."""
        while not self._cancelled and self._readable():
            self._receive()
        return self._cancelled

    def storage_context(
        self, sop_class_uid: str, transfer_syntax_uid: str
    ) -> tuple[int, str] | None:
        """An accepted context for C-STORE sub-operations of `sop_class_uid` on which the node
        acts as SCU: the stored transfer syntax if the requestor took it, else explicit and
        then implicit VR little endian (the instance is then converted), else None."""
        candidates = {
            transfer_syntax: context_id
            for context_id, (abstract_syntax, transfer_syntax) in sorted(
                self._negotiated.contexts.items(), reverse=True
            )
            if context_id in self._negotiated.scu_contexts and abstract_syntax == sop_class_uid
        }
        for syntax in (
            transfer_syntax_uid,
            _EXPLICIT_VR_LITTLE_ENDIAN,
            _IMPLICIT_VR_LITTLE_ENDIAN,
        ):
            if syntax in candidates:
                return candidates[syntax], syntax
        return None

    def store(
        self,
        context_id: int,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        fragments: Iterable[bytes | memoryview],
        size: int,
    ) -> StoreAnswer:
        """Send a C-STORE-RQ whose data set is `fragments` (`size` bytes in all, each fragment
        at most `fragment_size`) and wait for its C-STORE-RSP."""
        self._next_message_id = self._next_message_id % 0xFFFF + 1
        message_id = self._next_message_id
        command = encode_store_request(
            message_id=message_id,
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            priority=self._command.us(0x0700) or 0,
        )
        for message in pdu.p_data_pdus(context_id, command, self._negotiated.peer_max_pdu):
            self._sock.sendall(message)
        self._send_data_set(context_id, fragments, size)
        while message_id not in self._store_answers:
            self._receive()
        return self._store_answers.pop(message_id)

    def _send_data_set(
        self, context_id: int, fragments: Iterable[bytes | memoryview], size: int
    ) -> None:
        sent = 0
        for fragment in fragments:
            sent += len(fragment)
            self._sock.sendall(pdu.data_set_pdu(context_id, fragment, last=sent >= size))
        if sent != size:
            raise pdu.PduError(f"data set of {sent} bytes where {size} were announced")
        self.sent_bytes += sent

    def _readable(self) -> bool:
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        readable, _, _ = select.select([self._sock], [], [], 0)
        return bool(readable)

    def _receive(self) -> None:
        """Read one PDU and take note of the commands it completes."""
        pdu_type, body = pdu.read_pdu(self._sock, self._max_pdu)
        if pdu_type == pdu.A_ABORT:
            raise pdu.PduError("association aborted by the peer")
        if pdu_type != pdu.P_DATA_TF:
            raise pdu.PduError(f"PDU type {pdu_type} while an operation is outstanding")
        for value in pdu.iter_pdvs(body):
            if not value.is_command:
                raise pdu.PduError("a data set while an operation is outstanding")
            self._partial += value.data
            if value.is_last:
                self._on_command(decode_command(self._partial))
                self._partial.clear()

    def _on_command(self, command: Command) -> None:
        if command.command_field == C_CANCEL_RQ:
            # A cancel for another message ID refers to nothing outstanding: ignored.
            if command.us(MESSAGE_ID_BEING_RESPONDED_TO) == self._command.message_id:
                self._cancelled = True
        elif command.command_field == _C_STORE_RSP:
            responded_to = command.us(MESSAGE_ID_BEING_RESPONDED_TO)
            status = command.us(STATUS)
            if responded_to is None or status is None:
                raise pdu.PduError("C-STORE-RSP without Message ID Being Responded To or Status")
            self._store_answers[responded_to] = StoreAnswer(status, command.text(ERROR_COMMENT))
        else:
            # Asynchronous operations are not negotiated (PS3.7 D.3.3.3): one at a time.
            raise pdu.PduError(
                f"command 0x{command.command_field:04X} while an operation is outstanding"
            )
