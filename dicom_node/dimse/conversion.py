"""Re-encoding a stored instance for a retrieve requestor that did not accept its transfer
syntax (PS3.4 C.4.2.3.1 / C.4.3.3.1 sub-operations; PS3.5 10: uncompressed syntaxes).

The only targets are explicit and implicit VR little endian, which every DICOM peer accepts;
compressed pixel data is decompressed with pydicom's decoders. Whatever cannot be converted
(a codec that is missing, big endian data pydicom will not swap) raises ConversionError and
the sub-operation counts as failed.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = ["CONVERSION_TARGETS", "ConversionError", "convert_instance"]

CONVERSION_TARGETS = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))


class ConversionError(ValueError):
    """The instance cannot be re-encoded in the requested transfer syntax."""


def convert_instance(path: Path, transfer_syntax_uid: str) -> bytes:
    """The dataset of the Part 10 file at `path` (no File Meta Information) encoded in
    `transfer_syntax_uid`, one of CONVERSION_TARGETS."""
    if transfer_syntax_uid not in CONVERSION_TARGETS:
        raise ConversionError(f"no conversion to {transfer_syntax_uid}")
    try:
        dataset = dcmread(path)
        if UID(dataset.file_meta.TransferSyntaxUID).is_compressed:
            # The same instance in another encoding: its SOP Instance UID stays.
            dataset.decompress(generate_instance_uid=False)
        buffer = DicomBytesIO()
        buffer.is_implicit_VR = UID(transfer_syntax_uid).is_implicit_VR
        buffer.is_little_endian = True
        write_dataset(buffer, dataset)
    except Exception as exc:  # codecs and writers raise many kinds
        raise ConversionError(f"{type(exc).__name__}: {exc}") from exc
    return buffer.getvalue()
