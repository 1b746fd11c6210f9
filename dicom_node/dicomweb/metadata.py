"""WADO-RS metadata (PS3.18 10.4.1.1.2): an instance's attributes in the DICOM JSON model
(PS3.18 F.2), large binary values replaced by a BulkDataURI the node serves.

Unlike QIDO-RS (dicomweb.json_model, whose URI callback sees only a top-level tag), metadata
needs the path to nested values and must not read Pixel Data, so it walks the dataset itself;
each element is still encoded by pydicom's DataElement.to_json_dict.

A value goes out by BulkDataURI when its VR is binary (OB, OD, OF, OL, OV, OW, UN) and it is
longer than 1 KiB, and always for Pixel Data. The URI is
`{instance URL}/bulkdata/{tag path}`, the path being the tags (8 hex digits) and item indexes
(from 0) down to the element, e.g. `7FE00010` or `00880200/0/7FE00010`. Files are read up to
Pixel Data only; values longer than 1 KiB are not even read (pydicom's deferred reading).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

__all__ = ["BULK_DATA_THRESHOLD", "bulk_value", "instance_metadata", "parse_tag_path"]

logger = logging.getLogger(__name__)

BULK_DATA_THRESHOLD = 1024
_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_PIXEL_DATA = BaseTag(0x7FE00010)

UriFor = Callable[[Sequence[int]], str]


def _vr_of(dataset: Dataset, tag: BaseTag, raw: RawDataElement | DataElement) -> str:
    vr = raw.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    if " or " in vr:  # ambiguous in implicit VR (PS3.5 A.1): the binary reading of it
        if tag == _PIXEL_DATA:
            return "OW" if int(dataset.get("BitsAllocated", 16)) > 8 else "OB"
        return "OW" if "OW" in vr else vr.split(" or ")[0]
    return str(vr)


def _element_json(
    dataset: Dataset, tag: BaseTag, path: tuple[int, ...], uri_for: UriFor
) -> dict[str, Any]:
    raw = dataset.get_item(tag)
    assert raw is not None
    deferred = isinstance(raw, RawDataElement) and raw.value is None and raw.length > 0
    if deferred:
        vr = _vr_of(dataset, tag, raw)
        if vr in _BULK_VRS:
            return {"vr": vr, "BulkDataURI": uri_for((*path, int(tag)))}
    element = dataset[tag]
    if element.VR == "SQ":
        items = [
            _dataset_json(item, (*path, int(tag), index), uri_for)
            for index, item in enumerate(element.value)
        ]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if element.VR in _BULK_VRS and len(element.value or b"") > BULK_DATA_THRESHOLD:
        return {"vr": element.VR, "BulkDataURI": uri_for((*path, int(tag)))}
    result: dict[str, Any] = element.to_json_dict(None, BULK_DATA_THRESHOLD)
    return result


def _dataset_json(dataset: Dataset, path: tuple[int, ...], uri_for: UriFor) -> dict[str, Any]:
    result = {}
    for tag in sorted(dataset.keys()):
        if tag.element == 0:  # group lengths are not part of the JSON model
            continue
        try:
            result[f"{int(tag):08X}"] = _element_json(dataset, tag, path, uri_for)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            # As json_model does for QIDO: one undecodable value does not sink the object.
            logger.warning(
                "metadata left out an element that does not convert",
                extra={"tag": f"{int(tag):08X}", "error": type(exc).__name__},
            )
    return result


def _pixel_data_vr(file_position: int, path: Path, header: Dataset) -> str | None:
    """VR of the Pixel Data element at `file_position`, or None when there is none."""
    with path.open("rb") as file:
        file.seek(file_position)
        raw = file.read(12)
    if len(raw) < 8 or struct.unpack_from("<I", raw)[0] != 0x00107FE0:
        return None
    syntax = UID(header.file_meta.TransferSyntaxUID)
    if syntax.is_compressed:
        return "OB"
    if not syntax.is_implicit_VR and raw[4:6] in (b"OB", b"OW"):
        return raw[4:6].decode("ascii")
    return "OW" if int(header.get("BitsAllocated", 16)) > 8 else "OB"


def instance_metadata(path: Path, instance_url: str) -> dict[str, Any]:
    """The DICOM JSON object of the stored instance at `path`."""

    def uri_for(tag_path: Sequence[int]) -> str:
        return f"{instance_url}/bulkdata/" + "/".join(
            f"{part:08X}" if position % 2 == 0 else str(part)
            for position, part in enumerate(tag_path)
        )

    with path.open("rb") as file:
        header = pydicom.dcmread(file, stop_before_pixels=True, defer_size=BULK_DATA_THRESHOLD)
        pixel_position = file.tell()
    result = _dataset_json(header, (), uri_for)
    pixel_vr = _pixel_data_vr(pixel_position, path, header)
    if pixel_vr is not None:
        result["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": uri_for((int(_PIXEL_DATA),))}
    return result


def parse_tag_path(text: str) -> list[int]:
    """`00880200/0/7FE00010` -> [0x00880200, 0, 0x7FE00010]; ValueError when malformed."""
    parts = text.split("/")
    if len(parts) % 2 != 1 or len(parts) > 33:
        raise ValueError("a bulk data path is tag(/item/tag)*")
    result = []
    for position, part in enumerate(parts):
        if position % 2 == 0:
            if len(part) != 8 or any(c not in "0123456789abcdefABCDEF" for c in part):
                raise ValueError("tags are 8 hexadecimal digits")
            result.append(int(part, 16))
        else:
            if not part.isdigit() or len(part) > 6:
                raise ValueError("item indexes are non-negative integers")
            result.append(int(part))
    return result


def bulk_value(path: Path, tag_path: Sequence[int]) -> tuple[str, bytes] | None:
    """(VR, value bytes) of a binary element inside the stored instance, or None."""
    dataset: Dataset = pydicom.dcmread(path)
    for position in range(0, len(tag_path) - 1, 2):
        sequence = dataset.get(BaseTag(tag_path[position]))
        index = tag_path[position + 1]
        if sequence is None or sequence.VR != "SQ" or index >= len(sequence.value):
            return None
        dataset = sequence.value[index]
    tag = BaseTag(tag_path[-1])
    if tag not in dataset:
        return None
    element = dataset[tag]
    if element.VR not in _BULK_VRS and " or " not in element.VR:
        return None
    value = element.value
    return str(element.VR), bytes(value) if isinstance(value, bytes | bytearray) else b""
