"""Checking what a node left on disk and in its index, and what dcmtk's storescu reported.

Stored files carry the node's own File Meta Information, so they are compared with the sent
files by their dataset part: the bytes after group 0002.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import struct
import subprocess
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from tests.support.peers import require_command

_META_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"  # (0002,0000) UL, explicit VR little endian
_META_START = 132  # 128-byte preamble + "DICM"
_SENDING = re.compile(r"^I: Sending file: (?P<path>.+)$")
_RESPONSE = re.compile(r"^I: Received Store Response(?: \((?P<text>.*)\))?$")
_STATUS = re.compile(r"^D: DIMSE Status\s*: 0x(?P<code>[0-9a-fA-F]{4})\b")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700


def dataset_bytes(path: Path) -> bytes:
    """The bytes of a Part 10 file after its File Meta Information."""
    data = path.read_bytes()
    if data[128:_META_START] != b"DICM":
        raise ValueError(f"{path} has no DICM prefix")
    header_end = _META_START + len(_META_GROUP_LENGTH)
    if data[_META_START:header_end] != _META_GROUP_LENGTH:
        raise ValueError(f"{path} has no File Meta Information Group Length")
    (group_length,) = struct.unpack("<I", data[header_end : header_end + 4])
    end = header_end + 4 + group_length
    if end > len(data):
        raise ValueError(f"{path} ends inside its File Meta Information")
    return data[end:]


def dataset_sha256(path: Path) -> str:
    return hashlib.sha256(dataset_bytes(path)).hexdigest()


def sop_instance_uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def read_problem(path: Path) -> str | None:
    """Why `path` does not parse completely with pydicom (pixels included), or None."""
    try:
        dataset = dcmread(path)
        pixels = dataset.pixel_array
        if pixels.shape[-2:] != (dataset.Rows, dataset.Columns):
            return f"pixel array shape {pixels.shape} differs from Rows x Columns"
        dataset_bytes(path)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def stored_files(storage: Path) -> list[Path]:
    """Every .dcm under `<storage>/studies`."""
    return sorted((storage / "studies").rglob("*.dcm"))


def incoming_entries(storage: Path) -> list[str]:
    incoming = storage / ".incoming"
    return sorted(entry.name for entry in incoming.iterdir()) if incoming.exists() else []


@dataclass(frozen=True)
class IndexRow:
    sop_instance_uid: str
    file_path: str
    sha256: str


def index_rows(database: Path) -> dict[str, IndexRow]:
    """The instance rows of a node's SQLite index, by SOP Instance UID (read-only query)."""
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT sop_instance_uid, file_path, sha256 FROM instance"
        ).fetchall()
    return {str(uid): IndexRow(str(uid), str(path), str(digest)) for uid, path, digest in rows}


@dataclass(frozen=True)
class StoreResponse:
    """One C-STORE response as storescu logged it: `text` with -v, `status` with -d."""

    text: str | None
    status: int | None

    @property
    def success(self) -> bool:
        return self.status == SUCCESS if self.status is not None else self.text == "Success"


def parse_storescu_log(log: str) -> dict[Path, StoreResponse]:
    """The response storescu logged for each file it sent (files without one are absent)."""
    responses: dict[Path, StoreResponse] = {}
    current: Path | None = None
    answered: Path | None = None
    for line in log.splitlines():
        if match := _SENDING.match(line):
            current, answered = Path(match["path"]), None
        elif (match := _RESPONSE.match(line)) and current is not None:
            responses[current] = StoreResponse(text=match["text"], status=None)
            answered = current
        elif (match := _STATUS.match(line)) and answered is not None:
            responses[answered] = StoreResponse(
                text=responses[answered].text, status=int(match["code"], 16)
            )
    return responses


def storescu_command(port: int, files: Sequence[Path], *options: str) -> list[str]:
    return [
        require_command("storescu"),
        *options,
        "-aec",
        "DICOM_NODE",
        "127.0.0.1",
        str(port),
        *(str(path) for path in files),
    ]


def storescu_env() -> dict[str, str]:
    return dict(os.environ, TCP_NODELAY="1")


def run_storescu(
    port: int, files: Sequence[Path], *options: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        storescu_command(port, files, *options),
        capture_output=True,
        text=True,
        env=storescu_env(),
        timeout=timeout_s,
        check=False,
    )
