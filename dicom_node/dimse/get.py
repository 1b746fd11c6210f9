"""C-GET SCP (PS3.4 C.4.3): the named instances are sent by C-STORE sub-operations on the
same association, in presentation contexts where the requestor took the SCP role by SCP/SCU
Role Selection (PS3.7 D.3.3.4; dicom_node.dimse.negotiation accepts it).

Each stored file is streamed from disk after its File Meta Information, in fragments of the
requestor's maximum PDU length, never decoded. An instance whose stored transfer syntax the
requestor did not accept is converted to explicit/implicit VR little endian when it accepted
one of those (dicom_node.dimse.conversion); an instance of a SOP class without a context
with the SCP role, or one that cannot be converted, counts as a failed sub-operation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from dicom_node.dimse.association import AssociationLog, DimseRequest, ServiceHandler
from dicom_node.dimse.commands import SubOperations
from dicom_node.dimse.conversion import ConversionError, convert_instance
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.qr import QueryRetrieveContext
from dicom_node.dimse.retrieve import (
    SubOperationResult,
    classify_store_status,
    run_sub_operations,
    select_instances,
)
from dicom_node.dimse.status import Status
from dicom_node.query import InstanceLocation
from dicom_node.storage.part10 import PREAMBLE, dataset_offset

__all__ = ["make_get_handler"]

logger = logging.getLogger(__name__)

_META_PREFIX = len(PREAMBLE) + 12  # up to and including the (0002,0000) group length value


def _file_fragments(path: Path, offset: int, size: int, fragment: int) -> Iterator[bytes]:
    with path.open("rb") as stream:
        stream.seek(offset)
        remaining = size
        while remaining > 0:
            chunk = stream.read(min(fragment, remaining))
            if not chunk:
                raise OSError(f"{path} is shorter than its indexed size")
            remaining -= len(chunk)
            yield chunk


def _memory_fragments(data: bytes, fragment: int) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(data), fragment):
        yield view[start : start + fragment]


def _send_instance(
    exchange: ServiceExchange, context: QueryRetrieveContext, location: InstanceLocation
) -> SubOperationResult:
    chosen = exchange.storage_context(location.sop_class_uid, location.transfer_syntax_uid)
    if chosen is None:
        logger.warning(
            "C-GET: no accepted context with the SCP role for %s", location.sop_class_uid
        )
        return SubOperationResult.FAILED
    context_id, syntax = chosen
    path = context.area.absolute(location.file_path)
    fragment = exchange.fragment_size
    try:
        if syntax == location.transfer_syntax_uid:
            with path.open("rb") as stream:
                offset = dataset_offset(stream.read(_META_PREFIX))
            size = path.stat().st_size - offset
            fragments: Iterator[bytes | memoryview] = _file_fragments(path, offset, size, fragment)
        else:
            converted = convert_instance(path, syntax)
            size = len(converted)
            fragments = _memory_fragments(converted, fragment)
    except (ConversionError, OSError) as exc:
        logger.warning("C-GET: instance not sent: %s", exc)
        return SubOperationResult.FAILED
    answer = exchange.store(
        context_id,
        sop_class_uid=location.sop_class_uid,
        sop_instance_uid=location.sop_instance_uid,
        fragments=fragments,
        size=size,
    )
    return classify_store_status(answer.status)


def make_get_handler(context: QueryRetrieveContext) -> ServiceHandler:
    def handle_get(
        request: DimseRequest, exchange: ServiceExchange, record: AssociationLog
    ) -> None:
        record.gets += 1
        locations = select_instances(request, exchange, context)
        if locations is None:
            return
        if not locations:
            exchange.respond(Status.SUCCESS, sub_operations=SubOperations(None, 0, 0, 0))
            return
        run_sub_operations(
            exchange,
            locations,
            lambda location: _send_instance(exchange, context, location),
            record=record,
            transfer_syntax=request.transfer_syntax,
        )

    return handle_get
