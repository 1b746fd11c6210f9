"""Association negotiation as acceptor (PS3.8 section 7.1, PS3.7 annex D.3.3).

pynetdicom decodes the A-ASSOCIATE-RQ and negotiates presentation contexts and roles; this
module applies our access rules and builds the A-ASSOCIATE-AC or -RJ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from pydicom.uid import UID
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from dicom_node.config.models import PeerConfig

__all__ = ["Negotiated", "RejectReason", "negotiate"]

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"


class RejectReason:
    """(result, source, diagnostic) of A-ASSOCIATE-RJ (PS3.8 9.3.4)."""

    # rejected-permanent, DICOM UL service-user, calling-AE-title-not-recognized
    CALLING_AE_NOT_RECOGNIZED = (0x01, 0x01, 0x03)
    # rejected-permanent, DICOM UL service-user, called-AE-title-not-recognized
    CALLED_AE_NOT_RECOGNIZED = (0x01, 0x01, 0x07)
    # rejected-permanent, DICOM UL service-user, application-context-name-not-supported
    APPLICATION_CONTEXT_NOT_SUPPORTED = (0x01, 0x01, 0x02)
    # rejected-transient, DICOM UL service-provider (presentation), local-limit-exceeded
    LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


@dataclass(frozen=True)
class Negotiated:
    """The outcome: `reply` is the encoded A-ASSOCIATE-AC or -RJ to send."""

    reply: bytes
    accepted: bool
    calling_ae_title: str
    called_ae_title: str
    reason: str = ""
    # presentation context ID -> (abstract syntax, transfer syntax)
    contexts: dict[int, tuple[str, str]] = field(default_factory=dict)
    peer_max_pdu: int = 0
    # Contexts on which the node may act as SCU: the requestor took the SCP role by SCP/SCU
    # Role Selection (PS3.7 D.3.3.4), as C-GET needs for its C-STORE sub-operations.
    scu_contexts: frozenset[int] = frozenset()


def _reject(primitive: A_ASSOCIATE, reason: tuple[int, int, int], text: str) -> Negotiated:
    reply = A_ASSOCIATE()
    reply.result, reply.result_source, reply.diagnostic = reason
    pdu = A_ASSOCIATE_RJ()
    pdu.from_primitive(reply)
    return Negotiated(
        reply=pdu.encode(),
        accepted=False,
        calling_ae_title=primitive.calling_ae_title.strip(),
        called_ae_title=primitive.called_ae_title.strip(),
        reason=text,
    )


def peer_rejection(
    allowed_peers: list[PeerConfig] | None, calling_ae_title: str, address: str
) -> str:
    """Why `dimse.allowed_peers` refuses this peer, or "" when it may associate."""
    if allowed_peers is None:
        return ""
    if any(peer.admits(calling_ae_title, address) for peer in allowed_peers):
        return ""
    if any(peer.ae_title == calling_ae_title for peer in allowed_peers):
        return "calling AE title not allowed from this host"
    return "unknown calling AE title"


@dataclass(frozen=True, eq=False)  # hashed by identity: the server's one policy
class AcceptorPolicy:
    ae_title: str
    allowed_peers: list[PeerConfig] | None
    supported_contexts: list[PresentationContext]
    max_pdu_size: int
    implementation_class_uid: str
    implementation_version_name: str


def negotiate(
    request: bytes, address: str, policy: AcceptorPolicy, at_capacity: bool
) -> Negotiated:
    """Answer an A-ASSOCIATE-RQ body (`request`, PDU header included).

    A sender proposes the same contexts association after association (storescu: about 120
    SOP classes), and decoding and negotiating them costs milliseconds; an accepted answer is
    therefore remembered for the same request bytes from the same address (the policy is
    fixed for the server's life).
    """
    if at_capacity:
        return _negotiate(request, address, policy, at_capacity=True)
    return _negotiate_cached(request, address, policy)


@functools.lru_cache(maxsize=64)
def _negotiate_cached(request: bytes, address: str, policy: AcceptorPolicy) -> Negotiated:
    return _negotiate(request, address, policy, at_capacity=False)


def _negotiate(
    request: bytes, address: str, policy: AcceptorPolicy, *, at_capacity: bool
) -> Negotiated:
    pdu = A_ASSOCIATE_RQ()
    pdu.decode(request)
    primitive = pdu.to_primitive()
    calling = primitive.calling_ae_title.strip()
    if primitive.application_context_name != APPLICATION_CONTEXT_NAME:
        return _reject(
            primitive, RejectReason.APPLICATION_CONTEXT_NOT_SUPPORTED, "application context"
        )
    refusal = peer_rejection(policy.allowed_peers, calling, address)
    if refusal:
        return _reject(primitive, RejectReason.CALLING_AE_NOT_RECOGNIZED, refusal)
    if at_capacity:
        return _reject(primitive, RejectReason.LOCAL_LIMIT_EXCEEDED, "too many associations")

    peer_max_pdu = 0
    roles: dict[UID, tuple[bool | None, bool | None]] = {}
    for item in primitive.user_information:
        if isinstance(item, MaximumLengthNotification):
            peer_max_pdu = int(item.maximum_length_received or 0)
        elif isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid:
            roles[UID(item.sop_class_uid)] = (item.scu_role, item.scp_role)
    results, role_items = negotiate_as_acceptor(
        primitive.presentation_context_definition_list, policy.supported_contexts, roles
    )

    reply = A_ASSOCIATE()
    reply.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    reply.calling_ae_title = primitive.calling_ae_title
    reply.called_ae_title = primitive.called_ae_title
    reply.result = 0x00
    reply.result_source = 0x01
    reply.presentation_context_definition_results_list = results
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = policy.max_pdu_size
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = UID(policy.implementation_class_uid)
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = policy.implementation_version_name
    reply.user_information = [max_length, class_uid, version, *role_items]
    accept = A_ASSOCIATE_AC()
    accept.from_primitive(reply)
    contexts = {
        int(context.context_id): (str(context.abstract_syntax), str(context.transfer_syntax[0]))
        for context in results
        if context.result == 0x00 and context.context_id is not None
    }
    scu_contexts = frozenset(
        int(context.context_id)
        for context in results
        if context.result == 0x00 and context.context_id is not None and context.as_scu
    )
    return Negotiated(
        reply=accept.encode(),
        accepted=True,
        calling_ae_title=calling,
        called_ae_title=primitive.called_ae_title.strip(),
        contexts=contexts,
        peer_max_pdu=peer_max_pdu,
        scu_contexts=scu_contexts,
    )
