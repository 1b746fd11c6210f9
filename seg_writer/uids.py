"""UIDs of the written documents (PS3.5 9.1; derived UIDs under the 2.25 root, B.2)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields

import highdicom as hd

__all__ = ["ResultUids", "derived_uid"]

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


@dataclass(frozen=True)
class ResultUids:
    """Series and SOP Instance UIDs of the SEG and the SR.

    A caller that derives them from its job key gets the same instances when a job runs again
    (the segment tracking UIDs are derived from the SEG's instance UID, so they repeat too)."""

    segmentation_series: str
    segmentation_instance: str
    report_series: str
    report_instance: str

    def __post_init__(self) -> None:
        values = [getattr(self, field.name) for field in fields(self)]
        for field, value in zip(fields(self), values, strict=True):
            if len(value) > 64 or not _UID.fullmatch(value):
                raise ValueError(f"{field.name} is not a valid UID: {value!r}")
        if len(set(values)) != len(values):
            raise ValueError("the four result UIDs must differ from each other")

    @classmethod
    def generate(cls) -> ResultUids:
        """Fresh random UIDs."""
        return cls(hd.UID(), hd.UID(), hd.UID(), hd.UID())


def derived_uid(*parts: str) -> str:
    """A UID that is a pure function of `parts` (128 bits of SHA-256 under 2.25)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"
