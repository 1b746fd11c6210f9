"""What C-MOVE and C-GET share: which instances an identifier names, and the run of
C-STORE sub-operations with its counts, pending responses, cancel and final status.

PS3.4 C.4.2.2.1 / C.4.3.2.1: a retrieve identifier holds the Query/Retrieve Level and the
unique keys down to that level (one value for each level above, a list at the level;
C.6.1.2 / C.6.2.2 hierarchical retrieve). PS3.4 C.4.2.1 and C.4.3.1: statuses and
the Number of Remaining/Completed/Failed/Warning Sub-operations of each response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.dimse.association import AssociationLog, DimseRequest
from dicom_node.dimse.commands import SubOperations
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.identifiers import IdentifierError, decode_identifier, encode_identifier
from dicom_node.dimse.qr import QueryRetrieveContext, is_patient_root
from dicom_node.dimse.status import Status
from dicom_node.query import (
    InformationModel,
    InstanceLocation,
    QueryError,
    locate_instances,
    query_from_identifier,
    run_query,
)
from dicom_node.uids import is_valid_uid

__all__ = [
    "RetrieveRefusal",
    "SubOperationResult",
    "classify_store_status",
    "instances_to_retrieve",
    "run_sub_operations",
    "select_instances",
]

logger = logging.getLogger(__name__)


_LEVELS_BY_MODEL = {
    True: ("PATIENT", "STUDY", "SERIES", "IMAGE"),  # Patient Root
    False: ("STUDY", "SERIES", "IMAGE"),  # Study Root
}
_UID_LEVELS = ("STUDY", "SERIES", "IMAGE")
_UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


class SubOperationResult(Enum):
    COMPLETED = "completed"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class RetrieveRefusal(Exception):
    """The retrieve cannot start: its final status, a comment and the offending elements."""

    status: Status
    comment: str
    offending_elements: tuple[int, ...] = ()


def classify_store_status(status: int | None) -> SubOperationResult:
    """A C-STORE-RSP status as a sub-operation outcome (PS3.4 B.2.3: 0x0001 and 0xBxxx are
    warnings; no answer at all is a failure)."""
    if status == 0x0000:
        return SubOperationResult.COMPLETED
    if status is not None and (status == 0x0001 or 0xB000 <= status <= 0xBFFF):
        return SubOperationResult.WARNING
    return SubOperationResult.FAILED


def _values(identifier: Dataset, keyword: str) -> list[str]:
    if keyword not in identifier:
        return []
    value = identifier[keyword].value
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _refuse(comment: str, keyword: str) -> RetrieveRefusal:
    return RetrieveRefusal(
        Status.ERROR_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment, (int(Tag(keyword)),)
    )


def _uids(identifier: Dataset, keyword: str, *, single: bool) -> list[str]:
    values = _values(identifier, keyword)
    if single and len(values) > 1:
        raise _refuse(f"{keyword} above the level must be a single value", keyword)
    for value in values:
        if not is_valid_uid(value):
            raise _refuse(f"{keyword} is not a valid UID", keyword)
    return values


def instances_to_retrieve(
    identifier: Dataset,
    *,
    patient_root: bool,
    context: QueryRetrieveContext,
) -> list[InstanceLocation]:
    """The stored instances a retrieve identifier names (unknown UIDs name nothing)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    levels = _LEVELS_BY_MODEL[patient_root]
    if level not in levels:
        raise _refuse(
            f"QueryRetrieveLevel {level or '(empty)'} is not a level of this model",
            "QueryRetrieveLevel",
        )
    unique_key = _UNIQUE_KEYS[level]
    if level == "PATIENT":
        patient_ids = _values(identifier, "PatientID")
        if len(patient_ids) != 1:
            raise _refuse("PatientID must hold one value", "PatientID")
        studies = _studies_of_patient(context, patient_ids[0])
        if not studies:
            return []
        return locate_instances(context.index, study_instance_uids=studies)
    # One value for each level above, a list at the level (C.6.1.2.2 / C.6.2.2.2); a
    # higher-level key that is absent does not restrict (a relational-minded SCU).
    depth = _UID_LEVELS.index(level) + 1
    keys = {
        _UNIQUE_KEYS[above]: _uids(identifier, _UNIQUE_KEYS[above], single=above != level)
        for above in _UID_LEVELS[:depth]
    }
    if not keys[unique_key]:
        raise _refuse(f"{unique_key} is required at the {level} level", unique_key)
    return locate_instances(
        context.index,
        study_instance_uids=keys.get("StudyInstanceUID", []),
        series_instance_uids=keys.get("SeriesInstanceUID", []),
        sop_instance_uids=keys.get("SOPInstanceUID", []),
    )


def _studies_of_patient(context: QueryRetrieveContext, patient_id: str) -> list[str]:
    """Study Instance UIDs of a patient, through the query engine (Patient Root, STUDY
    level, single value matching on Patient ID)."""
    if any(character in patient_id for character in "*?\\"):
        raise _refuse("PatientID must be a single value without wildcards", "PatientID")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID = patient_id
    identifier.StudyInstanceUID = ""
    try:
        query = query_from_identifier(identifier, InformationModel.PATIENT_ROOT)
    except QueryError as exc:
        raise _refuse(str(exc), "PatientID") from exc
    return [
        str(match.StudyInstanceUID)
        for match in run_query(context.index, context.area, query)
        if "StudyInstanceUID" in match
    ]


def select_instances(
    request: DimseRequest, exchange: ServiceExchange, context: QueryRetrieveContext
) -> list[InstanceLocation] | None:
    """The instances a C-MOVE/C-GET request names; None after a final failure response
    (identifier that does not decode: 0xC000; that does not match the SOP class: 0xA900)."""
    try:
        identifier = decode_identifier(request.dataset, request.transfer_syntax)
    except IdentifierError as exc:
        exchange.respond(Status.FAILURE_UNABLE_TO_PROCESS, error_comment=str(exc))
        return None
    try:
        return instances_to_retrieve(
            identifier,
            patient_root=is_patient_root(request.abstract_syntax),
            context=context,
        )
    except RetrieveRefusal as refusal:
        exchange.respond(
            refusal.status,
            error_comment=refusal.comment,
            offending_elements=refusal.offending_elements,
        )
    except SQLAlchemyError:
        logger.exception("retrieve: the index cannot be read")
        exchange.respond(
            Status.FAILURE_UNABLE_TO_PROCESS_INTERNAL_ERROR, error_comment="index unavailable"
        )
    return None


def _failed_list(failed_uids: list[str], transfer_syntax: str) -> bytes | None:
    """The identifier of a final response after failures: Failed SOP Instance UID List
    (PS3.4 C.4.2.1.5 / C.4.3.1.4)."""
    if not failed_uids:
        return None
    identifier = Dataset()
    identifier.FailedSOPInstanceUIDList = failed_uids
    return encode_identifier(identifier, transfer_syntax)


def run_sub_operations(
    exchange: ServiceExchange,
    locations: Sequence[InstanceLocation],
    send: Callable[[InstanceLocation], SubOperationResult],
    *,
    record: AssociationLog,
    transfer_syntax: str,
    unreachable: str = "",
) -> None:
    """Run one sub-operation per instance and send the pending and final responses.

    Final status: Success when every sub-operation completed; Warning 0xB000 when some failed
    or warned; Refused 0xA702 when all failed; Cancel 0xFE00 when a C-CANCEL-RQ came first
    (checked before each sub-operation). `unreachable` (a comment) fails everything at once:
    the destination could not be reached."""
    completed = failed = warning = 0
    failed_uids: list[str] = []
    total = len(locations)
    for position, location in enumerate(locations):
        if exchange.cancel_requested():
            record.sub_completed += completed + warning
            record.sub_failed += failed
            exchange.respond(
                Status.CANCEL,
                identifier=_failed_list(failed_uids, transfer_syntax),
                sub_operations=SubOperations(total - position, completed, failed, warning),
            )
            return
        result = SubOperationResult.FAILED if unreachable else send(location)
        if result is SubOperationResult.COMPLETED:
            completed += 1
        elif result is SubOperationResult.WARNING:
            warning += 1
        else:
            failed += 1
            failed_uids.append(location.sop_instance_uid)
        remaining = total - position - 1
        if remaining:
            # A pending response after each sub-operation: a few dozen bytes next to a
            # C-STORE, and the requestor sees progress and can cancel (PS3.4 C.4.2.3.1).
            exchange.respond(
                Status.PENDING,
                sub_operations=SubOperations(remaining, completed, failed, warning),
            )
    record.sub_completed += completed + warning
    record.sub_failed += failed
    if failed and failed == total:
        status = Status.REFUSED_OUT_OF_RESOURCES_SUB_OPERATIONS
    elif failed or warning:
        status = Status.WARNING_SUB_OPERATIONS_COMPLETE_ONE_OR_MORE_FAILURES
    else:
        status = Status.SUCCESS
    exchange.respond(
        status,
        error_comment=unreachable if failed == total and unreachable else "",
        identifier=_failed_list(failed_uids, transfer_syntax),
        sub_operations=SubOperations(None, completed, failed, warning),
    )
