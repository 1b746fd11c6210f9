"""C-FIND SCP (PS3.4 C.4.1): Patient Root and Study Root, hierarchical queries answered by
the query engine (dicom_node.query): one Pending response with an identifier per match,
then Success; Cancel when a C-CANCEL-RQ arrives between two matches.

Statuses (PS3.4 C.4.1.1.4): an identifier that does not decode is 0xC000 "Unable to
process"; one the model cannot answer (level, keys, matching) is 0xA900 "Identifier does
not match SOP Class" with the Offending Element(s). More matches than dimse.max_find_results:
that many Pending responses, then 0xA700 "Refused: Out of resources" with an ErrorComment,
so the requestor knows the list is incomplete (PS3.4 has no "partial" status; a Success
would hide the cut).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from dicom_node.dimse.association import AssociationLog, DimseRequest, ServiceHandler
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.identifiers import IdentifierError, decode_identifier, encode_identifier
from dicom_node.dimse.qr import QueryRetrieveContext, is_patient_root
from dicom_node.dimse.status import Status
from dicom_node.query import InformationModel, QueryError, query_from_identifier, run_query

__all__ = ["make_find_handler"]

logger = logging.getLogger(__name__)

RETRIEVE_AE_TITLE = 0x00080054


def make_find_handler(context: QueryRetrieveContext) -> ServiceHandler:
    def handle_find(
        request: DimseRequest, exchange: ServiceExchange, record: AssociationLog
    ) -> None:
        record.finds += 1
        syntax = request.transfer_syntax
        try:
            identifier = decode_identifier(request.dataset, syntax)
        except IdentifierError as exc:
            exchange.respond(Status.FAILURE_UNABLE_TO_PROCESS, error_comment=str(exc))
            return
        model = (
            InformationModel.PATIENT_ROOT
            if is_patient_root(request.abstract_syntax)
            else InformationModel.STUDY_ROOT
        )
        try:
            query = query_from_identifier(identifier, model)
        except QueryError as exc:
            exchange.respond(
                Status.ERROR_IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                error_comment=str(exc),
                offending_elements=tuple(exc.offending_tags),
            )
            return
        # Retrieve AE Title (PS3.4 C.4.1.1.3): returned, with our AE title, when asked for.
        with_retrieve_ae_title = RETRIEVE_AE_TITLE in identifier
        cap = context.max_find_results
        matches = 0
        try:
            for response in run_query(
                context.index, context.area, query, limit=cap + 1 if cap else None
            ):
                if exchange.cancel_requested():
                    exchange.respond(Status.CANCEL)
                    return
                if cap and matches >= cap:
                    logger.warning(
                        "C-FIND: more than %d matches at %s level, refused the rest",
                        cap,
                        query.level.value,
                        extra={"peer": record.peer},
                    )
                    exchange.respond(
                        Status.REFUSED_OUT_OF_RESOURCES,
                        error_comment=f"more than {cap} matches: narrow the query",
                    )
                    return
                if with_retrieve_ae_title:
                    response.RetrieveAETitle = context.ae_title
                exchange.respond(Status.PENDING, identifier=encode_identifier(response, syntax))
                matches += 1
        except SQLAlchemyError:
            logger.exception("C-FIND: the index cannot be read", extra={"peer": record.peer})
            exchange.respond(
                Status.FAILURE_UNABLE_TO_PROCESS_INTERNAL_ERROR, error_comment="index unavailable"
            )
            return
        exchange.respond(Status.SUCCESS)

    return handle_find
