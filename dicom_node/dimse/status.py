"""DIMSE status codes the node answers with, each named after its meaning.

PS3.4 B.2.3 (C-STORE response statuses), PS3.7 C (general statuses).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


class Status(IntEnum):
    SUCCESS = 0x0000
    # PS3.4 B.2.3: the node changed data elements (here: supplied missing UIDs).
    WARNING_COERCION_OF_DATA_ELEMENTS = 0xB000
    # PS3.7 C.4.1: a SOP Instance with this UID is stored with other content (policy reject).
    FAILURE_DUPLICATE_SOP_INSTANCE = 0x0111
    # PS3.7 C.4.2: an unexpected local failure.
    FAILURE_PROCESSING = 0x0110
    # PS3.4 B.2.3 Refused: Out of Resources (disk full or below the configured reserve).
    REFUSED_OUT_OF_RESOURCES = 0xA700
    # PS3.4 B.2.3 Error: Data Set does not match SOP Class.
    ERROR_DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    # PS3.4 B.2.3 Error: Cannot understand (undecodable data, missing or invalid UIDs).
    ERROR_CANNOT_UNDERSTAND = 0xC000
