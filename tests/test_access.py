"""dimse.allowed_peers: unknown calling AEs, or known ones from other hosts, get A-ASSOCIATE-RJ."""

from __future__ import annotations

import time

from tests.conftest import NodeFactory
from tests.support.dicom import dcmtk
from tests.support.node import NodeProcess

REJECTED = "Association Rejected"
CALLING_AE_NOT_RECOGNIZED = "Calling AE Title Not Recognized"


def echo(node: NodeProcess, calling_ae_title: str) -> str:
    result = dcmtk("echoscu", "-v", "-aet", calling_ae_title, "127.0.0.1", str(node.dimse_port))
    return result.stderr


def test_allowed_peer_from_its_host_is_accepted(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"allowed_peers": [{"ae_title": "CT1", "hosts": ["127.0.0.1"]}]}})
    assert "Received Echo Response (Success)" in echo(node, "CT1")


def test_allowed_peer_without_hosts_is_accepted_from_anywhere(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"allowed_peers": [{"ae_title": "CT1"}]}})
    assert "Received Echo Response (Success)" in echo(node, "CT1")


def test_unknown_calling_ae_is_rejected_and_logged(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"allowed_peers": [{"ae_title": "CT1"}]}})
    output = echo(node, "INTRUDER")
    assert REJECTED in output
    assert CALLING_AE_NOT_RECOGNIZED in output
    assert "Received Echo Response" not in output
    node.terminate()
    assert "association rejected: unknown calling AE title" in node.log()


def test_known_ae_from_another_host_is_rejected_and_logged(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"allowed_peers": [{"ae_title": "CT1", "hosts": ["10.9.9.0/24"]}]}})
    output = echo(node, "CT1")
    assert REJECTED in output
    assert CALLING_AE_NOT_RECOGNIZED in output
    node.terminate()
    assert "association rejected: calling AE title not allowed from this host" in node.log()


def test_rejection_does_not_stop_the_node(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"allowed_peers": [{"ae_title": "CT1"}]}})
    assert REJECTED in echo(node, "INTRUDER")
    assert "Received Echo Response (Success)" in echo(node, "CT1")


def test_associations_beyond_the_limit_are_rejected_as_transient(
    start_node: NodeFactory,
) -> None:
    from pynetdicom import AE

    node = start_node({"dimse": {"workers": 1, "max_associations": 1}})
    requestor = AE(ae_title="HOLDER")
    requestor.add_requested_context("1.2.840.10008.1.1")
    held = requestor.associate("127.0.0.1", node.dimse_port)
    assert held.is_established
    try:
        output = echo(node, "SECOND")
        assert REJECTED in output
        assert "Local Limit Exceeded" in output
    finally:
        held.release()
    # The released association's thread leaves the count a moment after the release.
    deadline = time.monotonic() + 10
    while "Received Echo Response (Success)" not in echo(node, "THIRD"):
        assert time.monotonic() < deadline, "association slot not freed after release"
        time.sleep(0.05)
