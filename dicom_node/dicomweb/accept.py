"""Content negotiation for WADO-RS (PS3.18 8.7.3 and 8.7.4): which media type and transfer
syntax a response uses, from the Accept header.

What the node can give for an instance stored in transfer syntax S:
- S itself, unchanged (Accept transfer-syntax `*`, S, or no transfer-syntax parameter for
  application/dicom: we return what was received rather than PS3.18's default explicit VR
  little endian, as Orthanc and dcm4chee do, so retrieval is lossless and cheap);
- explicit VR little endian 1.2.840.10008.1.2.1 (decompressed/converted with pydicom), except
  from the retired big endian syntax;
- nothing else: no transcoding into another compressed syntax (406).
For frames, `application/octet-stream` without transfer-syntax means the PS3.18 default,
uncompressed 1.2.840.10008.1.2.1; `*` means as stored, the compressed bitstream when the
instance is compressed, labelled with its transfer syntax. A wildcard (`*/*`, or
`multipart/related; type="*/*"` as dicomweb-client sends by default) leaves the choice to the
node, which sends frames as stored (no decoding; the part's Content-Type names the syntax).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_node.dicomweb.multipart import parse_media_type
from dicom_node.http.problems import ProblemError

__all__ = [
    "MediaRange",
    "choose_frame_encoding",
    "choose_instance_syntax",
    "not_acceptable",
    "parse_accept",
    "wants",
]

EXPLICIT_LE = str(ExplicitVRLittleEndian)
OCTET_STREAM = "application/octet-stream"

# PS3.18 table 8.7.3-4/-5: the image media types of compressed transfer syntaxes.
_MEDIA_OF_SYNTAX = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
_MEDIA_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}
_NATIVE = {
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(DeflatedExplicitVRLittleEndian),
    str(ExplicitVRBigEndian),
}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header (RFC 9110 12.5.1)."""

    media: str  # e.g. multipart/related, application/dicom+json, */*
    part_type: str | None  # the `type` parameter of multipart/related
    transfer_syntax: str | None
    quality: float

    def matches(self, media: str) -> bool:
        if self.media in ("*/*", media):
            return True
        major, _, minor = self.media.partition("/")
        return minor == "*" and media.startswith(major + "/")


def _split(header: str) -> list[str]:
    """Split at commas outside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The acceptable media ranges, best first; no header means `*/*`."""
    if not header or not header.strip():
        return [MediaRange("*/*", None, None, 1.0)]
    ranges = []
    for item in _split(header):
        media = parse_media_type(item)
        if media is None:
            raise ProblemError(400, "Malformed Accept header", "a media range does not parse")
        try:
            quality = float(media.get("q") or 1.0)
        except ValueError as exc:
            raise ProblemError(400, "Malformed Accept header", "q is not a number") from exc
        if quality <= 0:
            continue
        part_type = media.get("type")
        ranges.append(
            MediaRange(
                media=media.type,
                part_type=part_type.lower() if part_type else None,
                transfer_syntax=media.get("transfer-syntax"),
                quality=quality,
            )
        )
    return sorted(ranges, key=lambda r: -r.quality)


def not_acceptable(what: str) -> ProblemError:
    return ProblemError(406, "Not acceptable", what)


def wants(ranges: Sequence[MediaRange], *offered: str) -> str:
    """The first of `offered` (single-part media types) that the client accepts, else 406."""
    for entry in ranges:
        for media in offered:
            if entry.matches(media):
                return media
    raise not_acceptable(f"this resource is available as {', '.join(offered)}")


def _syntax_for(requested: str | None, stored: str) -> str | None:
    if requested in (None, "*", stored):
        return stored
    if requested == EXPLICIT_LE and stored != str(ExplicitVRBigEndian):
        return EXPLICIT_LE
    return None


def choose_instance_syntax(
    ranges: Sequence[MediaRange], stored: str, *, single_part: bool = False
) -> tuple[str, bool] | None:
    """(transfer syntax, multipart) for an application/dicom instance stored in `stored`, or
    None when nothing acceptable can be made. `single_part`: a bare application/dicom answer
    is possible (one instance)."""
    for entry in ranges:
        if entry.media in ("multipart/related", "multipart/*", "*/*") and entry.part_type in (
            None,
            "application/dicom",
            "*/*",
        ):
            syntax = _syntax_for(entry.transfer_syntax, stored)
            if syntax is not None:
                return syntax, True
        elif entry.media == "application/dicom" and single_part:
            syntax = _syntax_for(entry.transfer_syntax, stored)
            if syntax is not None:
                return syntax, False
    return None


@dataclass(frozen=True)
class FrameEncoding:
    part_type: str  # media type of each part
    transfer_syntax: str  # EXPLICIT_LE: decoded native frames; else the stored bitstream


def choose_frame_encoding(ranges: Sequence[MediaRange], stored: str) -> FrameEncoding | None:
    """How to send frames of an instance stored in `stored` (PS3.18 8.7.4 pixel data)."""
    stored_media = _MEDIA_OF_SYNTAX.get(stored)
    native = stored in _NATIVE
    as_stored = (
        FrameEncoding(OCTET_STREAM, EXPLICIT_LE)
        if native
        else FrameEncoding(stored_media or OCTET_STREAM, stored)
    )
    for entry in ranges:
        if entry.media not in ("multipart/related", "multipart/*", "*/*"):
            continue
        part_type = _MEDIA_ALIASES.get(entry.part_type or "", entry.part_type)
        requested = entry.transfer_syntax
        if part_type == "*/*" or (part_type is None and entry.media == "*/*"):
            if requested in (None, "*", stored) or (requested == EXPLICIT_LE and native):
                return as_stored
        elif part_type in (None, OCTET_STREAM):
            if requested in (None, EXPLICIT_LE) and stored != str(ExplicitVRBigEndian):
                return FrameEncoding(OCTET_STREAM, EXPLICIT_LE)
            if requested in ("*", stored):
                return FrameEncoding(OCTET_STREAM, EXPLICIT_LE if native else stored)
        elif (
            stored_media is not None
            and part_type in (stored_media, "image/*")
            and requested in (None, "*", stored)
        ):
            return FrameEncoding(stored_media, stored)
    return None
