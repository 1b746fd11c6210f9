"""The Query/Retrieve services registered with the association loop, as data
(command field -> service handler), like the C-ECHO and C-STORE handlers of
dicom_node.dimse.scp."""

from __future__ import annotations

from dicom_node.dimse.association import (
    AssociationLog,
    CommandField,
    DimseRequest,
    ServiceHandler,
)
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.find import make_find_handler
from dicom_node.dimse.get import make_get_handler
from dicom_node.dimse.move import make_move_handler
from dicom_node.dimse.qr import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    QueryRetrieveContext,
)
from dicom_node.dimse.status import Status

__all__ = ["query_retrieve_services"]


def _for_classes(sop_classes: frozenset[str], service: ServiceHandler) -> ServiceHandler:
    """`service` on a presentation context of one of `sop_classes`; on any other context
    the request is refused (PS3.7 annex C: SOP Class not supported)."""

    def guarded(request: DimseRequest, exchange: ServiceExchange, record: AssociationLog) -> None:
        if request.abstract_syntax not in sop_classes:
            exchange.respond(
                Status.REFUSED_SOP_CLASS_NOT_SUPPORTED,
                error_comment="operation not valid in this presentation context",
            )
            return
        service(request, exchange, record)

    return guarded


def query_retrieve_services(context: QueryRetrieveContext) -> dict[int, ServiceHandler]:
    return {
        CommandField.C_FIND_RQ: _for_classes(
            frozenset({PATIENT_ROOT_FIND, STUDY_ROOT_FIND}), make_find_handler(context)
        ),
        CommandField.C_MOVE_RQ: _for_classes(
            frozenset({PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE}), make_move_handler(context)
        ),
        CommandField.C_GET_RQ: _for_classes(
            frozenset({PATIENT_ROOT_GET, STUDY_ROOT_GET}), make_get_handler(context)
        ),
    }
