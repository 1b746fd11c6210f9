"""multipart/related bodies (RFC 2387 over the RFC 2046 5.1 syntax), as PS3.18 8.7 uses them.

Reading: a whole request body already received (bounded and spooled, dicomweb.body) is split
into parts; anything that is not a complete multipart body (no opening delimiter, a part cut
off, no close delimiter) is a `MultipartError`, so a malformed request stores nothing.
Writing: the delimiter and part headers around response parts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "MediaType",
    "MultipartError",
    "Part",
    "closing_delimiter",
    "new_boundary",
    "parse_media_type",
    "part_header",
    "read_parts",
]

# RFC 2046 5.1.1 allows at most 70 characters from this set; real senders exceed it (Orthanc's
# DICOMweb plugin joins two UUIDs: 73), so longer ones are accepted up to a sane bound.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{1,200}")
_MAX_HEADER_BYTES = 16 * 1024
_NAME_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAMETER = re.compile(rf'\s*;\s*({_NAME_CHARS})\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)')


class MultipartError(ValueError):
    """The body is not a well-formed multipart body; the message is safe to send back."""


@dataclass(frozen=True)
class MediaType:
    """A media type with its parameters (RFC 9110 8.3.1); names lowercase, values unquoted."""

    type: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.parameters.get(name)


def parse_media_type(text: str) -> MediaType | None:
    """`type/subtype; name=value; name="quoted value"`, or None when it does not parse."""
    head, _, rest = text.partition(";")
    media = head.strip().lower()
    if not re.fullmatch(rf"{_NAME_CHARS}/{_NAME_CHARS}", media):
        return None
    parameters: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    position = 0
    while position < len(rest.rstrip()):
        match = _PARAMETER.match(rest, position)
        if match is None:
            return None
        value = match[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        parameters[match[1].lower()] = value
        position = match.end()
    return MediaType(media, parameters)


@dataclass(frozen=True)
class Part:
    headers: Mapping[str, str]  # names lowercase
    start: int  # content offsets in the body
    end: int

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class Buffer(Protocol):
    """What a received body offers: bytearray in memory, mmap of a spooled file."""

    def find(self, sub: bytes, start: int = ..., /) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes | bytearray: ...


def _parse_headers(block: bytes | bytearray) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in bytes(block).split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError("part header line without a name")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


def _after_delimiter(body: Buffer, position: int) -> int | None:
    """Position after a delimiter's line end, or None for the close delimiter."""
    if body[position : position + 2] == b"--":
        return None
    while body[position : position + 1] in (b" ", b"\t"):  # transport padding
        position += 1
    if body[position : position + 2] != b"\r\n":
        raise MultipartError("delimiter not followed by a line end")
    return position + 2


def read_parts(body: Buffer, boundary: str) -> Iterator[Part]:
    """The parts of `body`, each checked complete before it is yielded; the close delimiter
    must follow the last one (else MultipartError)."""
    if not _BOUNDARY.fullmatch(boundary) or boundary.endswith(" "):
        raise MultipartError("boundary parameter is not a valid RFC 2046 boundary")
    dash_boundary = b"--" + boundary.encode("ascii")
    delimiter = b"\r\n" + dash_boundary
    if body[: len(dash_boundary)] == dash_boundary:
        position = len(dash_boundary)
    else:
        found = body.find(delimiter)  # a preamble before the first delimiter
        if found < 0:
            raise MultipartError("no multipart delimiter with the declared boundary")
        position = found + len(delimiter)
    next_start = _after_delimiter(body, position)
    if next_start is None:
        raise MultipartError("multipart body without parts")
    while next_start is not None:
        if body[next_start : next_start + 2] == b"\r\n":
            headers: dict[str, str] = {}
            content_start = next_start + 2
        else:
            header_end = body.find(b"\r\n\r\n", next_start)
            if header_end < 0 or header_end - next_start > _MAX_HEADER_BYTES:
                raise MultipartError("part headers not terminated")
            headers = _parse_headers(body[next_start:header_end])
            content_start = header_end + 4
        content_end = body.find(delimiter, content_start)
        if content_end < 0:
            raise MultipartError("part not closed by a delimiter (body truncated?)")
        yield Part(headers=headers, start=content_start, end=content_end)
        next_start = _after_delimiter(body, content_end + len(delimiter))


def new_boundary() -> str:
    return secrets.token_hex(16)


def part_header(boundary: str, content_type: str, *, first: bool, **extra: str) -> bytes:
    """The delimiter and headers before a part's content (RFC 2046 5.1.1)."""
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    text = "\r\n".join(lines) + "\r\n\r\n"
    return (text if first else "\r\n" + text).encode("ascii")


def closing_delimiter(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")
