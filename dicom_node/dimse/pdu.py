"""Upper-layer PDU framing on a blocking socket (PS3.8 section 9.3).

pynetdicom encodes and decodes the association PDUs for us; this module only moves PDUs on and
off the wire: one `recv_into` per PDU body instead of many small reads, and P-DATA-TF
presentation data values (PS3.8 9.3.5) split without copying.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "A_ABORT",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "P_DATA_TF",
    "PduError",
    "PresentationDataValue",
    "abort_pdu",
    "data_set_pdu",
    "iter_pdvs",
    "p_data_pdus",
    "read_pdu",
    "release_rp_pdu",
]

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
# A peer announcing a PDU larger than this is broken or hostile (PS3.8 leaves it unbounded).
_MAX_ACCEPTED_PDU = 64 * 1024 * 1024


class PduError(Exception):
    """The peer closed the connection or sent something that is not a valid PDU."""


@dataclass(frozen=True)
class PresentationDataValue:
    context_id: int
    is_command: bool
    is_last: bool
    data: memoryview


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:], size - received)
        if count == 0:
            raise PduError("connection closed by peer")
        received += count
    return buffer


def read_pdu(sock: socket.socket, max_length: int) -> tuple[int, bytearray]:
    """Read one PDU; return its type and body (the bytes after the 6-byte header)."""
    pdu_type, length = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    limit = max_length + 6 if max_length else _MAX_ACCEPTED_PDU
    if length > max(limit, 64 * 1024):
        raise PduError(f"PDU of {length} bytes exceeds the negotiated maximum")
    return pdu_type, _recv_exactly(sock, length)


def iter_pdvs(body: bytearray) -> Iterator[PresentationDataValue]:
    """The presentation data values of a P-DATA-TF body."""
    view = memoryview(body)
    offset = 0
    while offset < len(body):
        if offset + _PDV_HEADER.size > len(body):
            raise PduError("truncated presentation data value")
        item_length, context_id, control = _PDV_HEADER.unpack_from(body, offset)
        end = offset + 4 + item_length
        if item_length < 2 or end > len(body):
            raise PduError("invalid presentation data value length")
        yield PresentationDataValue(
            context_id=context_id,
            is_command=bool(control & 0x01),
            is_last=bool(control & 0x02),
            data=view[offset + 6 : end],
        )
        offset = end


def p_data_pdus(context_id: int, command: bytes, max_length: int) -> list[bytes]:
    """P-DATA-TF PDUs carrying a command set, fragmented to the peer's maximum PDU length."""
    fragment = (max_length - 6) if max_length else len(command)
    fragment = max(fragment, 1)
    pdus = []
    for start in range(0, len(command), fragment):
        chunk = command[start : start + fragment]
        last = start + fragment >= len(command)
        control = 0x03 if last else 0x01
        pdv = _PDV_HEADER.pack(len(chunk) + 2, context_id, control) + chunk
        pdus.append(_HEADER.pack(P_DATA_TF, len(pdv)) + pdv)
    return pdus


def data_set_pdu(context_id: int, fragment: bytes | memoryview, *, last: bool) -> bytes:
    """One P-DATA-TF PDU carrying one data set fragment (PS3.8 E.2: control bit 0 clear)."""
    pdv = _PDV_HEADER.pack(len(fragment) + 2, context_id, 0x02 if last else 0x00)
    return _HEADER.pack(P_DATA_TF, len(pdv) + len(fragment)) + pdv + fragment


def release_rp_pdu() -> bytes:
    return _HEADER.pack(A_RELEASE_RP, 4) + b"\x00" * 4


def abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    """A-ABORT (PS3.8 9.3.8); source 0x00 service user, 0x02 service provider."""
    return _HEADER.pack(A_ABORT, 4) + bytes((0, 0, source, reason))
