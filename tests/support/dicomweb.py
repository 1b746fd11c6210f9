"""DICOMweb helpers for tests: multipart/related bodies built and split independently of the
node's own code (dicom_node.dicomweb.multipart), and STOW-RS of files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["BOUNDARY", "STOW_TYPE", "multipart_body", "split_multipart", "stow"]

BOUNDARY = "test-boundary-7d1c"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart_body(
    parts: Sequence[bytes], *, boundary: str = BOUNDARY, content_type: str = "application/dicom"
) -> bytes:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def stow(
    base_url: str, files: Sequence[Path], *, study: str | None = None, timeout: float = 60
) -> httpx.Response:
    url = f"{base_url}/dicomweb/studies" + (f"/{study}" if study else "")
    body = multipart_body([path.read_bytes() for path in files])
    return httpx.post(url, content=body, headers={"Content-Type": STOW_TYPE}, timeout=timeout)


def split_multipart(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """(headers with lowercase names, content) of each part of a multipart response."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    assert match, content_type
    delimiter = b"--" + match[1].encode()
    body = response.content
    assert body.startswith(delimiter), body[:100]
    pieces = body.split(b"\r\n" + delimiter)
    assert pieces[-1].startswith(b"--"), "no close delimiter"
    parts = []
    for index, piece in enumerate(pieces[:-1]):
        if index == 0:
            piece = piece[len(delimiter) :]
        assert piece.startswith(b"\r\n"), piece[:40]
        head, _, content = piece[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts
