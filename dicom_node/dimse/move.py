"""C-MOVE SCP (PS3.4 C.4.2): the named instances are sent by C-STORE sub-operations on a
new association to the Move Destination, an AE title resolved against the `dimse`
destinations of the config (unknown: 0xA801).

The sub-association (pynetdicom as SCU, the destination's `tls` when configured) proposes
each SOP class once per stored transfer syntax and once with explicit/implicit VR little
endian. Files are streamed as stored (no decoding); an instance whose stored syntax the
destination did not accept is converted (dicom_node.dimse.conversion) or counts as failed.
Each C-STORE-RQ names the Move Originator AE Title and Message ID (PS3.7 9.3.1.1).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.association import Association

from dicom_node.config.models import DimseDestinationConfig
from dicom_node.dimse.association import AssociationLog, DimseRequest, ServiceHandler
from dicom_node.dimse.commands import MOVE_DESTINATION, SubOperations
from dicom_node.dimse.conversion import CONVERSION_TARGETS, ConversionError, convert_instance
from dicom_node.dimse.exchange import ServiceExchange
from dicom_node.dimse.qr import QueryRetrieveContext
from dicom_node.dimse.retrieve import (
    SubOperationResult,
    classify_store_status,
    run_sub_operations,
    select_instances,
)
from dicom_node.dimse.status import Status
from dicom_node.dispatch.dimse import tls_arguments
from dicom_node.query import InstanceLocation
from dicom_node.storage.instances import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dicom_node.storage.part10 import PREAMBLE, encode_file_meta

__all__ = ["make_move_handler"]

logger = logging.getLogger(__name__)

_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1-255


def _requested_contexts(locations: Sequence[InstanceLocation]) -> list[tuple[str, list[str]]]:
    """One context per SOP class and stored transfer syntax (so nothing stored needs
    converting when the destination takes it), then one per SOP class with explicit and
    implicit VR little endian for the instances whose own syntax is refused."""
    exact = dict.fromkeys(
        (location.sop_class_uid, location.transfer_syntax_uid) for location in locations
    )
    contexts = [(sop_class, [syntax]) for sop_class, syntax in exact]
    uncompressed = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
    contexts += [
        (sop_class, list(uncompressed))
        for sop_class in dict.fromkeys(exact_class for exact_class, _ in exact)
    ]
    if len(contexts) > _MAX_CONTEXTS:
        logger.warning(
            "C-MOVE needs %d presentation contexts, proposing the first %d",
            len(contexts),
            _MAX_CONTEXTS,
        )
    return contexts[:_MAX_CONTEXTS]


class _MoveSender:
    """The association to the Move Destination and one C-STORE per instance."""

    def __init__(
        self,
        destination: DimseDestinationConfig,
        context: QueryRetrieveContext,
        request: DimseRequest,
        locations: Sequence[InstanceLocation],
    ) -> None:
        self._destination = destination
        self._context = context
        self._originator = (request.calling_ae_title, request.command.message_id)
        self._locations = locations
        self._association: Association | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.unreachable = ""

    def __enter__(self) -> _MoveSender:
        destination = self._destination
        # pynetdicom reads this module-level switch when it sends a path: stream the dataset.
        _config.STORE_SEND_CHUNKED_DATASET = True
        ae = AE(ae_title=destination.calling_ae_title or self._context.ae_title)
        ae.connection_timeout = destination.timeout_s
        ae.acse_timeout = destination.timeout_s
        ae.dimse_timeout = destination.timeout_s
        ae.network_timeout = destination.timeout_s
        for sop_class, syntaxes in _requested_contexts(self._locations):
            ae.add_requested_context(sop_class, syntaxes)
        association = ae.associate(
            destination.host,
            destination.port,
            ae_title=destination.ae_title,
            tls_args=tls_arguments(destination),
        )
        if association.is_established:
            self._association = association
        else:
            reason = "rejected" if association.is_rejected else "aborted or unreachable"
            self.unreachable = f"association with {destination.ae_title} {reason}"
            logger.warning(
                "C-MOVE: %s (%s:%d)", self.unreachable, destination.host, destination.port
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._association is not None and self._association.is_established:
            self._association.release()
        if self._scratch is not None:
            self._scratch.cleanup()

    def _accepted_syntax(self, location: InstanceLocation) -> str | None:
        assert self._association is not None
        accepted = {
            str(context.transfer_syntax[0])
            for context in self._association.accepted_contexts
            if context.abstract_syntax == location.sop_class_uid and context.transfer_syntax
        }
        for syntax in (location.transfer_syntax_uid, *CONVERSION_TARGETS):
            if syntax in accepted:
                return syntax
        return None

    def _converted_file(self, location: InstanceLocation, syntax: str) -> Path:
        """A Part 10 file of the instance in `syntax`, in a scratch folder removed at exit."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="dicom-node-move-")
        dataset = convert_instance(self._context.area.absolute(location.file_path), syntax)
        meta = encode_file_meta(
            media_storage_sop_class_uid=location.sop_class_uid,
            media_storage_sop_instance_uid=location.sop_instance_uid,
            transfer_syntax_uid=syntax,
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION_NAME,
        )
        path = Path(self._scratch.name) / "converted.dcm"
        path.write_bytes(PREAMBLE + meta + dataset)
        return path

    def send(self, location: InstanceLocation) -> SubOperationResult:
        association = self._association
        if association is None or not association.is_established:
            return SubOperationResult.FAILED
        syntax = self._accepted_syntax(location)
        if syntax is None:
            logger.warning(
                "C-MOVE: %s accepted no context for %s in %s or uncompressed",
                self._destination.ae_title,
                location.sop_class_uid,
                location.transfer_syntax_uid,
            )
            return SubOperationResult.FAILED
        try:
            if syntax == location.transfer_syntax_uid:
                path = self._context.area.absolute(location.file_path)
            else:
                path = self._converted_file(location, syntax)
            answer = association.send_c_store(
                path, originator_aet=self._originator[0], originator_id=self._originator[1]
            )
        except ConversionError as exc:
            logger.warning("C-MOVE: instance not converted to %s: %s", syntax, exc)
            return SubOperationResult.FAILED
        except (OSError, ValueError, AttributeError, RuntimeError) as exc:
            logger.warning("C-MOVE: C-STORE sub-operation failed: %s", exc)
            return SubOperationResult.FAILED
        return classify_store_status(getattr(answer, "Status", None))


def make_move_handler(context: QueryRetrieveContext) -> ServiceHandler:
    def handle_move(
        request: DimseRequest, exchange: ServiceExchange, record: AssociationLog
    ) -> None:
        record.moves += 1
        destination_ae = request.command.text(MOVE_DESTINATION)
        destination = context.destinations.get(destination_ae)
        if destination is None:
            logger.warning("C-MOVE to unknown destination %r", destination_ae)
            exchange.respond(
                Status.REFUSED_MOVE_DESTINATION_UNKNOWN,
                error_comment=f"unknown move destination {destination_ae}",
            )
            return
        locations = select_instances(request, exchange, context)
        if locations is None:
            return
        if not locations:
            exchange.respond(Status.SUCCESS, sub_operations=SubOperations(None, 0, 0, 0))
            return
        with _MoveSender(destination, context, request, locations) as sender:
            run_sub_operations(
                exchange,
                locations,
                sender.send,
                record=record,
                transfer_syntax=request.transfer_syntax,
                unreachable=sender.unreachable,
            )

    return handle_move
