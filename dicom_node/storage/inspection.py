"""Checking a received encoded dataset without decoding its pixel data.

A dataset is accepted for storage only when its top level parses completely in the negotiated
transfer syntax (PS3.5 section 7): tags ascending, every defined-length value present in full,
undefined-length values closed by their delimiter, no trailing bytes. That catches truncated
transfers and wrong value lengths, which pydicom's reader would otherwise tolerate silently.
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_node.errors import InvalidInstanceError

__all__ = ["InstanceHeader", "read_header"]

_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_SPECIFIC_CHARACTER_SET = BaseTag(0x00080005)


@dataclass(frozen=True)
class InstanceHeader:
    """The decoded top level of a received dataset (pixel data left as raw bytes)."""

    dataset: Dataset
    transfer_syntax_uid: UID


def _inflate(encoded: bytes | bytearray) -> bytes:
    try:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(encoded)
    except zlib.error as exc:
        raise InvalidInstanceError(f"deflated dataset does not inflate: {exc}") from exc


def _raw_elements(encoded: bytes | bytearray, syntax: UID) -> dict[BaseTag, RawDataElement]:
    stream = io.BytesIO(encoded)
    elements: dict[BaseTag, RawDataElement] = {}
    previous = -1
    consumed = 0
    try:
        for element in data_element_generator(
            stream, syntax.is_implicit_VR, syntax.is_little_endian
        ):
            if element.tag <= previous:
                raise InvalidInstanceError(
                    f"element ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) out of order:"
                    " wrong value length or corrupt data"
                )
            if not isinstance(element, RawDataElement):  # the generator yields raw elements
                raise InvalidInstanceError("dataset does not decode")
            previous = element.tag
            value = element.value
            if element.length != _UNDEFINED_LENGTH and len(value or b"") != element.length:
                raise InvalidInstanceError(
                    f"element ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) is truncated:"
                    f" {len(value or b'')} of {element.length} bytes"
                )
            elements[element.tag] = element
            consumed = stream.tell()
    except InvalidInstanceError:
        raise
    except (EOFError, ValueError, KeyError, NotImplementedError, OverflowError) as exc:
        raise InvalidInstanceError(f"dataset does not decode: {exc}") from exc
    if consumed != len(encoded):
        raise InvalidInstanceError(
            f"dataset does not decode: {len(encoded) - consumed} bytes after the last element"
        )
    if not elements:
        raise InvalidInstanceError("dataset is empty")
    return elements


def _python_encodings(dataset: Dataset) -> list[str]:
    """The Python codecs for the dataset's Specific Character Set (PS3.5 6.1), read from the raw
    element so that the element itself stays raw (the index reads it without pydicom)."""
    item = dataset.get_item(_SPECIFIC_CHARACTER_SET)
    if item is None:
        return [default_encoding]
    raw = item.value if isinstance(item, RawDataElement) else None
    if isinstance(raw, bytes | bytearray):
        terms = [term.strip(" \x00") for term in bytes(raw).decode("ascii", "replace").split("\\")]
    else:
        value = dataset[_SPECIFIC_CHARACTER_SET].value
        terms = [str(term) for term in (value if isinstance(value, list | MultiValue) else [value])]
    with warnings.catch_warnings():
        # An unknown term falls back to the default repertoire; storing must not fail on it.
        warnings.simplefilter("ignore")
        return list(convert_encodings(terms or [""]))


def read_header(encoded: bytes | bytearray, transfer_syntax_uid: str) -> InstanceHeader:
    """Parse the dataset `encoded` (no preamble or file meta) as sent in `transfer_syntax_uid`.

    Raises InvalidInstanceError with a short, PHI-free reason when it does not parse completely.
    """
    syntax = UID(transfer_syntax_uid)
    if not syntax.is_transfer_syntax:
        raise InvalidInstanceError(f"unknown transfer syntax {transfer_syntax_uid}")
    plain = _inflate(encoded) if syntax == DeflatedExplicitVRLittleEndian else encoded
    elements = _raw_elements(plain, syntax)
    dataset = Dataset(cast(MutableMapping[BaseTag, DataElement | RawDataElement], elements))
    dataset.set_original_encoding(
        syntax.is_implicit_VR, syntax.is_little_endian, _python_encodings(dataset)
    )
    return InstanceHeader(dataset=dataset, transfer_syntax_uid=syntax)
