"""DIMSE status codes the node answers with, each named after its meaning.

PS3.4 B.2.3 (C-STORE response statuses), PS3.4 C.4.1.1.4 (C-FIND), C.4.2.1.5 (C-MOVE),
C.4.3.1.4 (C-GET), PS3.7 C (general statuses). Codes shared by several services are
aliases: one value, a name for each meaning.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


class Status(IntEnum):
    SUCCESS = 0x0000
    # PS3.4 B.2.3: the node changed data elements (here: supplied missing UIDs).
    WARNING_COERCION_OF_DATA_ELEMENTS = 0xB000
    # PS3.4 C.4.2.1.5 / C.4.3.1.4: sub-operations complete, one or more failures or warnings.
    WARNING_SUB_OPERATIONS_COMPLETE_ONE_OR_MORE_FAILURES = 0xB000
    # PS3.7 C.4.1: a SOP Instance with this UID is stored with other content (policy reject).
    FAILURE_DUPLICATE_SOP_INSTANCE = 0x0111
    # PS3.7 C.4.2: an unexpected local failure.
    FAILURE_PROCESSING = 0x0110
    # PS3.7 annex C: Refused - SOP Class not supported (an operation on a context of a SOP
    # class it does not belong to).
    REFUSED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    # PS3.4 B.2.3 Refused: Out of Resources (disk full or below the configured reserve);
    # C.4.1.1.4 for C-FIND: more matches than dimse.max_find_results.
    REFUSED_OUT_OF_RESOURCES = 0xA700
    # PS3.4 C.4.2.1.5 / C.4.3.1.4: Refused: Out of resources - unable to perform
    # sub-operations (every sub-operation failed, or the destination cannot be reached).
    REFUSED_OUT_OF_RESOURCES_SUB_OPERATIONS = 0xA702
    # PS3.4 C.4.2.1.5: Refused: Move Destination unknown.
    REFUSED_MOVE_DESTINATION_UNKNOWN = 0xA801
    # PS3.4 B.2.3 Error: Data Set does not match SOP Class.
    ERROR_DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    # PS3.4 C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.4: Identifier does not match SOP Class.
    ERROR_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    # PS3.4 B.2.3 Error: Cannot understand (undecodable data, missing or invalid UIDs).
    ERROR_CANNOT_UNDERSTAND = 0xC000
    # PS3.4 C.4.1.1.4 (Cxxx) Failure: Unable to process - the identifier does not decode.
    FAILURE_UNABLE_TO_PROCESS = 0xC000
    # PS3.4 C.4 (Cxxx) Failure: Unable to process - an internal error (index, storage).
    FAILURE_UNABLE_TO_PROCESS_INTERNAL_ERROR = 0xC001
    # PS3.4 C.4: the operation was cancelled by a C-CANCEL-RQ.
    CANCEL = 0xFE00
    # PS3.4 C.4: Pending - a match (C-FIND) or sub-operations continuing (C-MOVE, C-GET).
    PENDING = 0xFF00
