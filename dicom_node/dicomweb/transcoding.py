"""A stored instance re-encoded in explicit VR little endian (PS3.5 A.2), for a WADO-RS client
that accepts only that: compressed Pixel Data decoded with pydicom's decoders, implicit VR and
deflated datasets re-written. Everything else in the dataset is kept as it is.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

__all__ = ["TranscodingError", "to_explicit_little_endian"]


class TranscodingError(ValueError):
    """The instance cannot be converted (its pixel data does not decode)."""


def to_explicit_little_endian(path: Path) -> bytes:
    """The PS3.10 file at `path` as an explicit VR little endian PS3.10 file."""
    dataset = pydicom.dcmread(path)
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if syntax == ExplicitVRLittleEndian:
        return path.read_bytes()
    if syntax == ExplicitVRBigEndian:
        raise TranscodingError("big endian instances are served only as stored")
    try:
        if syntax.is_compressed:
            dataset.decompress()
    except Exception as exc:  # pydicom's decoders raise many types
        raise TranscodingError(f"pixel data does not decode: {type(exc).__name__}") from exc
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buffer.getvalue()
