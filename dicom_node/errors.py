"""The one exception tree of dicom-node.

DicomNodeError
├── ConfigError            the config file is unreadable or invalid (carries every problem)
└── StorageError           an instance could not be stored; carries the DIMSE/HTTP meaning
    ├── InvalidInstanceError   the data is wrong: undecodable, missing or invalid UIDs
    │   └── SopClassMismatchError  the dataset's SOP Class is not the one it was sent as
    ├── DuplicateInstanceError same SOP Instance UID, different bytes, policy "reject"
    └── OutOfResourcesError    disk full or below the configured reserve
├── VolumeAssemblyError    a series cannot become one image volume; carries a named reason
└── DispatchError          results could not be delivered to a destination (retried)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dicom_node.config.loading import ConfigProblem

__all__ = [
    "ConfigError",
    "DicomNodeError",
    "DispatchError",
    "DuplicateInstanceError",
    "InvalidInstanceError",
    "OutOfResourcesError",
    "SopClassMismatchError",
    "StorageError",
    "VolumeAssemblyError",
]


class DicomNodeError(Exception):
    """Base of every error dicom-node raises on purpose."""


class ConfigError(DicomNodeError):
    def __init__(self, path: Path, problems: Sequence[ConfigProblem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s)\n{lines}")


class StorageError(DicomNodeError):
    """An instance was not stored. The message is short and safe to send to the peer
    (no patient data); it becomes the DIMSE ErrorComment or the HTTP problem detail.
    `status` is the storage status it means (PS3.4 B.2.3), the C-STORE response Status and
    the STOW-RS Failure Reason (PS3.18 I.2.2) alike."""

    status = 0x0110  # Processing failure


class InvalidInstanceError(StorageError):
    status = 0xC000  # Error: cannot understand


class SopClassMismatchError(InvalidInstanceError):
    status = 0xA900  # Error: data set does not match SOP class


class DuplicateInstanceError(StorageError):
    status = 0x0111  # Failure: duplicate SOP instance


class OutOfResourcesError(StorageError):
    status = 0xA700  # Refused: out of resources


class VolumeAssemblyError(DicomNodeError):
    """A series was refused as a volume. `reason` is a stable name (a member of the assembly
    module's rejection enum, e.g. "missing_slice"); the message says what and where."""

    def __init__(self, reason: StrEnum, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


class DispatchError(DicomNodeError):
    """A delivery attempt failed (peer down, association refused, an instance not stored).
    The message names the destination's answer; the delivery is retried with backoff."""
