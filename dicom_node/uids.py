"""UID checks and deterministic UID derivation (PS3.5 section 9 and annex B.2)."""

from __future__ import annotations

import hashlib
import re

__all__ = ["derive_uid", "is_valid_uid"]

UID_MAX_LENGTH = 64  # PS3.5 9.1
# Digits and dots, no empty component. Leading zeros in a component are invalid per PS3.5 9.1
# but are sent by real equipment; they are harmless in a file name, so they are tolerated.
_UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def is_valid_uid(value: object) -> bool:
    """True when `value` is a UID safe to use as a file name component and SQL key."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= UID_MAX_LENGTH
        and _UID_PATTERN.fullmatch(value) is not None
    )


def derive_uid(*parts: str) -> str:
    """A UID under the 2.25 root (PS3.5 B.2: UUID-derived) that is a pure function of `parts`,
    so the same inputs always give the same UID."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"
