"""Q/R identifiers on the wire: decoded and encoded with pydicom in the context's transfer
syntax (PS3.7 9.3.2-9.3.4; the Q/R contexts accept only explicit and implicit VR little
endian, see dicom_node.dimse.qr)."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

__all__ = ["IdentifierError", "decode_identifier", "encode_identifier"]


class IdentifierError(ValueError):
    """The identifier of a request does not decode."""


def _encoding(transfer_syntax_uid: str) -> tuple[bool, bool]:
    syntax = UID(transfer_syntax_uid)
    if syntax.is_deflated or syntax.is_compressed:
        raise IdentifierError(f"identifiers are not exchanged in {transfer_syntax_uid}")
    return syntax.is_implicit_VR, syntax.is_little_endian


def decode_identifier(data: bytes | None, transfer_syntax_uid: str) -> Dataset:
    """The request identifier, every element decoded (so bad values fail here, not later)."""
    if not data:
        raise IdentifierError("the request has no identifier")
    is_implicit_vr, is_little_endian = _encoding(transfer_syntax_uid)
    try:
        dataset = read_dataset(BytesIO(data), is_implicit_vr, is_little_endian)
        for _ in dataset.iterall():
            pass
    except Exception as exc:  # pydicom raises many kinds for undecodable bytes
        raise IdentifierError(f"identifier does not decode: {type(exc).__name__}") from exc
    if len(dataset) == 0:
        raise IdentifierError("the identifier is empty")
    return dataset


def encode_identifier(dataset: Dataset, transfer_syntax_uid: str) -> bytes:
    """A response identifier (or a C-GET/C-MOVE Failed SOP Instance UID List) in the
    context's transfer syntax."""
    is_implicit_vr, is_little_endian = _encoding(transfer_syntax_uid)
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = is_implicit_vr
    buffer.is_little_endian = is_little_endian
    write_dataset(buffer, dataset)
    return buffer.getvalue()
