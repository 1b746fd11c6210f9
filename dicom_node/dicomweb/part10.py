"""Reading the File Meta Information of a received PS3.10 file (7.1), without pydicom.

A STOW-RS part of type application/dicom is a PS3.10 file (PS3.18 8.7.3.1): 128-byte
preamble, "DICM", group 0002 in explicit VR little endian, then the dataset in the transfer
syntax the meta names. The dataset bytes are stored exactly as received (after the meta).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dicom_node.errors import InvalidInstanceError

__all__ = ["META_WINDOW", "FileMeta", "read_file_meta"]

_PREFIX_END = 132
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_MAX_META_BYTES = 64 * 1024
# Enough of a file's start to read its meta (what read_file_meta looks at, at most).
META_WINDOW = _PREFIX_END + _MAX_META_BYTES


@dataclass(frozen=True)
class FileMeta:
    media_storage_sop_class_uid: str
    media_storage_sop_instance_uid: str
    transfer_syntax_uid: str
    dataset_offset: int  # where the dataset starts in the file


def _uid(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace").strip()


def read_file_meta(data: bytes | bytearray | memoryview) -> FileMeta:
    """The meta of a PS3.10 file; InvalidInstanceError (safe to send back) when it has none."""
    if len(data) < _PREFIX_END + 8 or bytes(data[128:_PREFIX_END]) != b"DICM":
        raise InvalidInstanceError("not a DICOM PS3.10 file (no DICM prefix)")
    values: dict[int, bytes] = {}
    position = _PREFIX_END
    limit = min(len(data), _PREFIX_END + _MAX_META_BYTES)
    while position + 8 <= limit:
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            break
        vr = bytes(data[position + 4 : position + 6])
        if vr in _LONG_VRS:
            if position + 12 > limit:
                break
            (length,) = struct.unpack_from("<I", data, position + 8)
            start = position + 12
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            start = position + 8
        if length == 0xFFFFFFFF or start + length > len(data):
            raise InvalidInstanceError("File Meta Information is truncated or malformed")
        values[element] = bytes(data[start : start + length])
        position = start + length
    transfer_syntax_uid = _uid(values.get(0x0010, b""))
    if not transfer_syntax_uid:
        raise InvalidInstanceError("File Meta Information has no Transfer Syntax UID")
    return FileMeta(
        media_storage_sop_class_uid=_uid(values.get(0x0002, b"")),
        media_storage_sop_instance_uid=_uid(values.get(0x0003, b"")),
        transfer_syntax_uid=transfer_syntax_uid,
        dataset_offset=position,
    )
