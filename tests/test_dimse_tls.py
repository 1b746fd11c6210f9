"""DICOM TLS (PS3.15 B.9): the SCP with dcmtk's TLS clients, and the C-STORE SCU to a dcmtk
storescp speaking TLS."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicom_node.config.models import DimseDestinationConfig
from dicom_node.dispatch.dimse import send_dimse
from dicom_node.errors import DispatchError
from dicom_node.phantom import write_phantom_series
from tests.conftest import NodeFactory
from tests.support.dicom import dataset_bytes, dcmtk, storescu
from tests.support.dimse_output import final_response
from tests.support.node import NodeProcess
from tests.support.peers import free_port, require_command
from tests.support.tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantom_series(tmp_path_factory.mktemp("ct"), shape=(2, 32, 32), seed=5)


def tls_node(start_node: NodeFactory, pki: Pki, **tls: Any) -> NodeProcess:
    settings = {
        "certificate": str(pki.server_certificate),
        "key": str(pki.server_key),
        "ca_certificates": str(pki.ca),
        **tls,
    }
    return start_node({"dimse": {"workers": 1, "tls": settings}})


def with_client_certificate(pki: Pki) -> tuple[str, ...]:
    return ("+tls", str(pki.client_key), str(pki.client_certificate), "+cf", str(pki.ca))


def anonymous(pki: Pki) -> tuple[str, ...]:
    return ("+tla", "+cf", str(pki.ca))


def stored(node: NodeProcess, path: Path) -> Path | None:
    uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    return next((node.storage / "studies").rglob(f"{uid}.dcm"), None)


def wait_for_log(node: NodeProcess, text: str, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in node.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{node.log()}"
        time.sleep(0.05)
    return node.log()


def test_tls_only_port_stores_from_storescu_with_tls(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki)
    result = storescu(node.dimse_port, instances[:1], *with_client_certificate(pki))
    assert result.returncode == 0, result.stderr
    copy = stored(node, instances[0])
    assert copy is not None
    assert dataset_bytes(copy) == dataset_bytes(instances[0])


def test_plain_association_to_tls_only_port_fails_at_handshake(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki)
    result = storescu(node.dimse_port, instances[:1])
    assert result.returncode != 0
    assert stored(node, instances[0]) is None
    assert "TLS handshake failed" in wait_for_log(node, "TLS handshake failed")


def test_separate_tls_port_speaks_tls(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, port=0)
    assert node.dimse_tls_port not in (0, node.dimse_port)
    result = storescu(node.dimse_tls_port, instances[:1], *anonymous(pki))
    assert result.returncode == 0, result.stderr
    assert stored(node, instances[0]) is not None


def test_separate_tls_port_leaves_dimse_port_plain(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, port=0)
    result = storescu(node.dimse_port, instances[:1])
    assert result.returncode == 0, result.stderr
    assert stored(node, instances[0]) is not None


def test_plain_association_to_separate_tls_port_fails(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, port=0)
    result = storescu(node.dimse_tls_port, instances[:1])
    assert result.returncode != 0
    assert stored(node, instances[0]) is None


def test_required_client_certificate_missing_fails(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, require_client_certificate=True)
    result = storescu(node.dimse_port, instances[:1], *anonymous(pki))
    assert result.returncode != 0
    assert stored(node, instances[0]) is None
    wait_for_log(node, "TLS handshake failed")


def test_required_client_certificate_from_another_ca_fails(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, require_client_certificate=True)
    result = storescu(
        node.dimse_port,
        instances[:1],
        "+tls",
        str(pki.stranger_key),
        str(pki.stranger_certificate),
        "+cf",
        str(pki.ca),
    )
    assert result.returncode != 0
    assert stored(node, instances[0]) is None


def test_required_client_certificate_present_succeeds(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki, require_client_certificate=True)
    result = storescu(node.dimse_port, instances, *with_client_certificate(pki))
    assert result.returncode == 0, result.stderr
    assert all(stored(node, path) is not None for path in instances)


def test_failed_handshakes_leave_the_node_accepting(
    start_node: NodeFactory, pki: Pki, instances: list[Path]
) -> None:
    node = tls_node(start_node, pki)
    for _ in range(3):
        assert dcmtk("echoscu", "127.0.0.1", str(node.dimse_port)).returncode != 0
    result = dcmtk("echoscu", *anonymous(pki), "127.0.0.1", str(node.dimse_port))
    assert result.returncode == 0, result.stderr


class TlsStoreScp:
    """dcmtk storescp speaking only TLS, requiring a client certificate from our CA."""

    def __init__(self, folder: Path, pki: Pki) -> None:
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        tls = ("+tls", str(pki.server_key), str(pki.server_certificate), "+cf", str(pki.ca))
        self._process = subprocess.Popen(
            [require_command("storescp"), *tls, "+B", "-od", str(folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        echo = ("echoscu", *with_client_certificate(pki), "127.0.0.1", str(self.port))
        while dcmtk(*echo).returncode:
            assert self._process.poll() is None, "storescp +tls exited"
            assert time.monotonic() < deadline, "storescp +tls did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@pytest.fixture
def tls_storescp(tmp_path: Path, pki: Pki) -> Iterator[TlsStoreScp]:
    scp = TlsStoreScp(tmp_path / "received", pki)
    yield scp
    scp.stop()


def destination(port: int, **tls: Any) -> DimseDestinationConfig:
    return DimseDestinationConfig.model_validate(
        {
            "kind": "dimse",
            "ae_title": "STORESCP",
            "host": "127.0.0.1",
            "port": port,
            "timeout_s": 10,
            "tls": tls,
        }
    )


def test_send_dimse_over_tls_delivers_byte_equal(
    tls_storescp: TlsStoreScp, pki: Pki, instances: list[Path]
) -> None:
    send_dimse(
        destination(
            tls_storescp.port,
            ca_certificates=str(pki.ca),
            certificate=str(pki.client_certificate),
            key=str(pki.client_key),
        ),
        "DICOM_NODE",
        instances,
    )
    received = sorted(tls_storescp.folder.iterdir())
    assert len(received) == len(instances)
    assert {dataset_bytes(path) for path in received} == {dataset_bytes(path) for path in instances}


def test_send_dimse_refuses_a_server_its_ca_does_not_trust(
    tls_storescp: TlsStoreScp, pki: Pki, instances: list[Path]
) -> None:
    untrusting = destination(
        tls_storescp.port,
        ca_certificates=str(pki.other_ca),
        certificate=str(pki.client_certificate),
        key=str(pki.client_key),
    )
    with pytest.raises(DispatchError, match="aborted or unreachable"):
        send_dimse(untrusting, "DICOM_NODE", instances)
    assert list(tls_storescp.folder.iterdir()) == []


def test_move_sub_operations_use_the_destinations_tls(
    start_node: NodeFactory, tls_storescp: TlsStoreScp, pki: Pki, instances: list[Path]
) -> None:
    node = start_node(
        {
            "destinations": {
                "secure": {
                    "kind": "dimse",
                    "ae_title": "SECURE_SCP",
                    "host": "127.0.0.1",
                    "port": tls_storescp.port,
                    "timeout_s": 10,
                    "tls": {
                        "ca_certificates": str(pki.ca),
                        "certificate": str(pki.client_certificate),
                        "key": str(pki.client_key),
                    },
                }
            }
        }
    )
    assert storescu(node.dimse_port, instances).returncode == 0
    study = pydicom.dcmread(instances[0], stop_before_pixels=True).StudyInstanceUID
    result = dcmtk(
        "movescu", "-d", "-S", "-aem", "SECURE_SCP", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(node.dimse_port),
    )  # fmt: skip
    final = final_response(result.stdout + result.stderr)
    assert (final.status, final.counts["completed"], final.counts["failed"]) == (
        0x0000,
        len(instances),
        0,
    )
    received = sorted(tls_storescp.folder.iterdir())
    assert {dataset_bytes(path) for path in received} == {dataset_bytes(path) for path in instances}
