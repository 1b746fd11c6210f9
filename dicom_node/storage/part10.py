"""PS3.10 file framing: preamble, "DICM" and the File Meta Information group (7.1).

Encoded by hand because it is on the hot path of every stored instance and its layout is
fixed: a handful of explicit VR little endian elements (pydicom's writer takes ~0.5 ms).
tests/test_part10.py checks the bytes against pydicom's `write_file_meta_info`.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["PREAMBLE", "dataset_offset", "dataset_sha256", "encode_file_meta"]

PREAMBLE = b"\x00" * 128 + b"DICM"
_SHORT = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length
_LONG = struct.Struct("<HH2s2xI")  # group, element, VR, reserved, 32-bit length


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    if vr == b"OB":
        return _LONG.pack(0x0002, element, vr, len(value)) + value
    return _SHORT.pack(0x0002, element, vr, len(value)) + value


def encode_file_meta(
    *,
    media_storage_sop_class_uid: str,
    media_storage_sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
    source_application_entity_title: str = "",
) -> bytes:
    """The File Meta Information group, (0002,0000) group length first."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", media_storage_sop_class_uid.encode("ascii")),
            _element(0x0003, b"UI", media_storage_sop_instance_uid.encode("ascii")),
            _element(0x0010, b"UI", transfer_syntax_uid.encode("ascii")),
            _element(0x0012, b"UI", implementation_class_uid.encode("ascii")),
            _element(0x0013, b"SH", implementation_version_name.encode("ascii")),
            (
                _element(0x0016, b"AE", source_application_entity_title.encode("ascii"))
                if source_application_entity_title
                else b""
            ),
        )
    )
    return _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) + body


def dataset_offset(part10: bytes | bytearray) -> int:
    """Where the dataset starts in a Part 10 file the node wrote (after the meta group)."""
    start = len(PREAMBLE) + _SHORT.size + 4
    (group_length,) = struct.unpack_from("<I", part10, start - 4)
    return start + int(group_length)


def dataset_sha256(part10: bytes | bytearray) -> str:
    """sha256 of a Part 10 file's dataset: what the index records for a stored instance."""
    return hashlib.sha256(memoryview(part10)[dataset_offset(part10) :]).hexdigest()
