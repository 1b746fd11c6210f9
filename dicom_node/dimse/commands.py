"""DIMSE command sets (PS3.7 section 9.3 and annex E): group 0000, implicit VR little endian.

Command sets are a handful of fixed elements; decoding and encoding them directly costs a few
microseconds, where building pydicom Datasets for every request and response took about a
fifth of the time spent per stored instance.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "C_CANCEL_RQ",
    "Command",
    "CommandError",
    "SubOperations",
    "decode_command",
    "encode_response",
    "encode_service_response",
    "encode_store_request",
]

_ELEMENT = struct.Struct("<HHI")  # group, element, value length
_US = struct.Struct("<H")

AFFECTED_SOP_CLASS_UID = 0x0002
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO = 0x0120
MOVE_DESTINATION = 0x0600
PRIORITY = 0x0700
COMMAND_DATA_SET_TYPE = 0x0800
STATUS = 0x0900
OFFENDING_ELEMENT = 0x0901
ERROR_COMMENT = 0x0902
AFFECTED_SOP_INSTANCE_UID = 0x1000
NUMBER_OF_REMAINING_SUBOPERATIONS = 0x1020
NUMBER_OF_COMPLETED_SUBOPERATIONS = 0x1021
NUMBER_OF_FAILED_SUBOPERATIONS = 0x1022
NUMBER_OF_WARNING_SUBOPERATIONS = 0x1023
MOVE_ORIGINATOR_AE_TITLE = 0x1030
MOVE_ORIGINATOR_MESSAGE_ID = 0x1031

NO_DATA_SET = 0x0101
# PS3.7 E.1: any value other than 0x0101 says a data set follows; 0x0000 is the usual one.
DATA_SET_PRESENT = 0x0000
C_STORE_RQ = 0x0001
# PS3.7 9.3.2.3: C-CANCEL-RQ carries Message ID Being Responded To instead of a Message ID.
C_CANCEL_RQ = 0x0FFF
_TEXT_PADDING = b" \x00"
_CANCEL_FIELD = _US.pack(C_CANCEL_RQ)


class CommandError(ValueError):
    """The command set does not decode."""


@dataclass(frozen=True)
class Command:
    """A decoded request command set; `elements` keeps every raw value by element number."""

    command_field: int
    message_id: int
    has_data_set: bool
    elements: dict[int, bytes]

    def text(self, element: int) -> str:
        return self.elements.get(element, b"").decode("ascii", "replace").strip(" \x00")

    def us(self, element: int) -> int | None:
        value = self.elements.get(element)
        return _US.unpack(value[:2])[0] if value and len(value) >= 2 else None

    @property
    def affected_sop_class_uid(self) -> str:
        return self.text(AFFECTED_SOP_CLASS_UID)

    @property
    def affected_sop_instance_uid(self) -> str:
        return self.text(AFFECTED_SOP_INSTANCE_UID)


def decode_command(encoded: bytes | bytearray) -> Command:
    elements: dict[int, bytes] = {}
    offset = 0
    view = memoryview(encoded)
    while offset < len(encoded):
        if offset + _ELEMENT.size > len(encoded):
            raise CommandError("truncated command element")
        group, element, length = _ELEMENT.unpack_from(encoded, offset)
        offset += _ELEMENT.size
        if group != 0x0000 or offset + length > len(encoded):
            raise CommandError("command set element outside group 0000 or truncated")
        elements[element] = bytes(view[offset : offset + length])
        offset += length
    fields = [elements.get(COMMAND_FIELD), elements.get(MESSAGE_ID)]
    # C-CANCEL-RQ and responses (bit 15) carry Message ID Being Responded To instead.
    if (
        fields[1] is None
        and fields[0] is not None
        and (fields[0] == _CANCEL_FIELD or (len(fields[0]) == 2 and fields[0][1] & 0x80))
    ):
        fields[1] = elements.get(MESSAGE_ID_BEING_RESPONDED_TO)
    if any(value is None or len(value) != 2 for value in fields):
        raise CommandError("command set without Command Field or Message ID")
    data_set_type = elements.get(COMMAND_DATA_SET_TYPE, _US.pack(NO_DATA_SET))
    return Command(
        command_field=_US.unpack(fields[0])[0],  # type: ignore[arg-type]
        message_id=_US.unpack(fields[1])[0],  # type: ignore[arg-type]
        has_data_set=_US.unpack(data_set_type[:2])[0] != NO_DATA_SET,
        elements=elements,
    )


def _text_value(value: str, padding: bytes) -> bytes:
    encoded = value.encode("ascii", "replace")
    return encoded + padding if len(encoded) % 2 else encoded


def _encode_command(elements: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(_ELEMENT.pack(0, number, len(value)) + value for number, value in elements)
    return _ELEMENT.pack(0, 0, 4) + struct.pack("<I", len(body)) + body


def _response_header(request: Command, status: int, data_set_type: int) -> list[tuple[int, bytes]]:
    """The elements every response starts with (PS3.7 9.3): SOP class, command field with bit
    15 set, the request's message ID, data set type and status."""
    elements: list[tuple[int, bytes]] = []
    sop_class = request.affected_sop_class_uid
    if sop_class:
        elements.append((AFFECTED_SOP_CLASS_UID, _text_value(sop_class, b"\x00")))
    elements += [
        (COMMAND_FIELD, _US.pack(request.command_field | 0x8000)),
        (MESSAGE_ID_BEING_RESPONDED_TO, _US.pack(request.message_id)),
        (COMMAND_DATA_SET_TYPE, _US.pack(data_set_type)),
        (STATUS, _US.pack(status)),
    ]
    return elements


def encode_response(request: Command, status: int, error_comment: str = "") -> bytes:
    """The response to `request` (bit 15 set on its Command Field), with its group length."""
    elements = _response_header(request, status, NO_DATA_SET)
    if error_comment:
        elements.append((ERROR_COMMENT, _text_value(error_comment[:64], b" ")))
    sop_instance = request.affected_sop_instance_uid
    if sop_instance:
        elements.append((AFFECTED_SOP_INSTANCE_UID, _text_value(sop_instance, b"\x00")))
    return _encode_command(elements)


@dataclass(frozen=True)
class SubOperations:
    """Sub-operation counts of a C-MOVE or C-GET response (PS3.7 9.3.3.2, 9.3.4.2)."""

    remaining: int | None
    completed: int
    failed: int
    warning: int


def encode_service_response(
    request: Command,
    status: int,
    *,
    error_comment: str = "",
    has_data_set: bool = False,
    sub_operations: SubOperations | None = None,
    offending_elements: tuple[int, ...] = (),
) -> bytes:
    """A C-FIND, C-MOVE or C-GET response (PS3.7 9.3.2.2, 9.3.3.2, 9.3.4.2): an identifier
    follows when `has_data_set`; sub-operation counts for C-MOVE/C-GET; Offending Element
    (AT, each tag as group and element) for an identifier that does not match the SOP class."""
    elements = _response_header(request, status, DATA_SET_PRESENT if has_data_set else NO_DATA_SET)
    if offending_elements:
        tags = b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in offending_elements)
        elements.append((OFFENDING_ELEMENT, tags))
    if error_comment:
        elements.append((ERROR_COMMENT, _text_value(error_comment[:64], b" ")))
    if sub_operations is not None:
        counts = [
            (NUMBER_OF_COMPLETED_SUBOPERATIONS, sub_operations.completed),
            (NUMBER_OF_FAILED_SUBOPERATIONS, sub_operations.failed),
            (NUMBER_OF_WARNING_SUBOPERATIONS, sub_operations.warning),
        ]
        if sub_operations.remaining is not None:
            counts.insert(0, (NUMBER_OF_REMAINING_SUBOPERATIONS, sub_operations.remaining))
        # US: counts above 65535 cannot be expressed; PS3.7 has no wider field.
        elements += [(number, _US.pack(min(value, 0xFFFF))) for number, value in counts]
    return _encode_command(elements)


def encode_store_request(
    *,
    message_id: int,
    sop_class_uid: str,
    sop_instance_uid: str,
    priority: int = 0,
    move_originator_ae_title: str = "",
    move_originator_message_id: int | None = None,
) -> bytes:
    """A C-STORE-RQ with a data set (PS3.7 9.3.1.1), as sent for C-GET sub-operations."""
    elements: list[tuple[int, bytes]] = [
        (AFFECTED_SOP_CLASS_UID, _text_value(sop_class_uid, b"\x00")),
        (COMMAND_FIELD, _US.pack(C_STORE_RQ)),
        (MESSAGE_ID, _US.pack(message_id)),
        (PRIORITY, _US.pack(priority)),
        (COMMAND_DATA_SET_TYPE, _US.pack(DATA_SET_PRESENT)),
        (AFFECTED_SOP_INSTANCE_UID, _text_value(sop_instance_uid, b"\x00")),
    ]
    if move_originator_ae_title:
        elements.append(
            (MOVE_ORIGINATOR_AE_TITLE, _text_value(move_originator_ae_title.ljust(16), b" "))
        )
    if move_originator_message_id is not None:
        elements.append((MOVE_ORIGINATOR_MESSAGE_ID, _US.pack(move_originator_message_id)))
    return _encode_command(elements)
