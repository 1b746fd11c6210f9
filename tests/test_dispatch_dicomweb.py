"""Destination kind `dicomweb`: STOW-RS to a real Orthanc with its DICOMweb plugin and Basic
authentication, chunking, failures, and the outbox's retry and dead-letter semantics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from dicom_node.config.models import DicomWebDestinationConfig
from dicom_node.dispatch.dicomweb import send_dicomweb
from dicom_node.errors import DispatchError
from dicom_node.phantom import write_phantom_series
from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.orthanc import OrthancProcess
from tests.support.peers import free_port, missing
from tests.support.results import jobs, wait_delivered
from tests.support.tls import Pki, make_pki

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "stow", "orthanc-stow-secret"
SECRET_ENV = "TEST_STOW_PASSWORD"


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancProcess]:
    if not DICOMWEB_PLUGIN.is_file():
        missing(f"Orthanc DICOMweb plugin {DICOMWEB_PLUGIN}")
    process = OrthancProcess(
        tmp_path / "orthanc",
        settings={
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        },
        credentials=(USER, PASSWORD),
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantom_series(tmp_path_factory.mktemp("ct"), shape=(5, 32, 32), seed=7)


def destination(url: str, **settings: Any) -> DicomWebDestinationConfig:
    return DicomWebDestinationConfig.model_validate(
        {
            "kind": "dicomweb",
            "url": url,
            "auth": {"kind": "basic", "username": USER, "secret_env": SECRET_ENV},
            "timeout_s": 30,
            **settings,
        }
    )


def orthanc_files(orthanc: OrthancProcess) -> dict[str, bytes]:
    """Every instance Orthanc holds, as its file bytes, by SOP Instance UID."""
    found = {}
    for instance_id in orthanc.get("/instances"):
        uid = orthanc.get(f"/instances/{instance_id}/simplified-tags")["SOPInstanceUID"]
        found[uid] = orthanc.file(instance_id)
    return found


def sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_stow_to_orthanc_arrives_byte_equal(
    orthanc: OrthancProcess, instances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, PASSWORD)
    send_dicomweb(destination(f"{orthanc.url}/dicom-web"), instances)
    received = orthanc_files(orthanc)
    assert received == {sop_instance_uid(path): path.read_bytes() for path in instances}


def test_stow_is_chunked_by_max_instances_per_request(
    orthanc: OrthancProcess,
    instances: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(SECRET_ENV, PASSWORD)
    caplog.set_level(logging.INFO, logger="dicom_node.dispatch.dicomweb")
    send_dicomweb(destination(f"{orthanc.url}/dicom-web/", max_instances_per_request=2), instances)
    requests = [r.getMessage() for r in caplog.records if "STOW-RS request" in r.getMessage()]
    assert [message.split()[2] for message in requests] == ["1/3", "2/3", "3/3"]
    assert [message.split(": ")[1].split()[0] for message in requests] == ["2", "2", "1"]
    assert len(orthanc.get("/instances")) == 5


def test_stow_with_wrong_password_fails_naming_401(
    orthanc: OrthancProcess, instances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-password")
    with pytest.raises(DispatchError, match=r"/dicom-web/studies \(request 1/1\) answered 401"):
        send_dicomweb(destination(f"{orthanc.url}/dicom-web"), instances)
    assert orthanc.get("/instances") == []


def test_stow_to_a_closed_port_fails_naming_the_url(
    instances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, PASSWORD)
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(DispatchError, match=f"STOW-RS to {url}/studies .* ConnectError"):
        send_dicomweb(destination(url), instances)


def test_stow_without_its_secret_in_the_environment_fails(
    orthanc: OrthancProcess, instances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, PASSWORD)
    config = destination(f"{orthanc.url}/dicom-web")
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(DispatchError, match=f"environment variable {SECRET_ENV}"):
        send_dicomweb(config, instances)


# Through a running node: results of a job delivered by STOW-RS via the outbox.


def node_sending_by_stow(
    start_node: NodeFactory, orthanc: OrthancProcess, **settings: Any
) -> NodeProcess:
    return start_node(
        {
            "series": {"stable_after_s": 600},
            "destinations": {
                "web": {
                    "kind": "dicomweb",
                    "url": f"{orthanc.url}/dicom-web",
                    "auth": {"kind": "basic", "username": USER, "secret_env": SECRET_ENV},
                    "retry_backoff_s": 0.2,
                    "retry_backoff_max_s": 1.0,
                    **settings,
                }
            },
            "routes": [
                {
                    "name": "ct",
                    "match": {"Modality": "CT"},
                    "pipeline": "ct_basic",
                    "send_to": ["web"],
                }
            ],
        }
    )


def send_series(node: NodeProcess, folder: Path) -> str:
    files = write_phantom_series(folder, shape=(16, 64, 64), spacing=(3.0, 2.5, 2.5), seed=3)
    assert storescu(node.dimse_port, files).returncode == 0
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    response = httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=30)
    assert response.status_code == 200, response.text
    return uid


def test_node_delivers_results_by_stow(
    start_node: NodeFactory,
    orthanc: OrthancProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, PASSWORD)
    node = node_sending_by_stow(start_node, orthanc, max_instances_per_request=1)
    uid = send_series(node, tmp_path / "series")
    wait_delivered(node, uid)
    by_modality = {m: len(ids) for m, ids in orthanc.instances_by_modality().items()}
    assert by_modality == {"SEG": 1, "SR": 1}
    assert "STOW-RS request 2/2" in node.log()


def test_node_dead_letters_a_stow_refused_with_401(
    start_node: NodeFactory,
    orthanc: OrthancProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, "wrong-password")
    node = node_sending_by_stow(start_node, orthanc, max_attempts=2)
    uid = send_series(node, tmp_path / "series")
    deadline = time.monotonic() + 120
    while True:
        deliveries = [d for job in jobs(node, uid) for d in job["deliveries"]]
        if deliveries and deliveries[0]["state"] == "dead":
            break
        assert time.monotonic() < deadline, f"no dead letter: {deliveries}\n{node.log()[-3000:]}"
        time.sleep(0.2)
    assert deliveries[0]["attempts"] == 2
    assert "answered 401" in deliveries[0]["error"]
    assert orthanc.get("/instances") == []


# Against another dicom-node: HTTPS with a bearer token, and a partial failure (202).

TOKEN_ENV = "TEST_STOW_TOKEN"
TOKEN = "node-to-node-token-42"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secured_node(start_node: NodeFactory, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> NodeProcess:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return start_node(
        {
            "dimse": {"workers": 1},
            "http": {
                "tls": {"certificate": str(pki.server_certificate), "key": str(pki.server_key)},
                "auth": {"kind": "bearer", "tokens": [{"name": "peer", "env": TOKEN_ENV}]},
            },
        }
    )


def bearer_destination(url: str, **settings: Any) -> DicomWebDestinationConfig:
    return DicomWebDestinationConfig.model_validate(
        {
            "kind": "dicomweb",
            "url": url,
            "auth": {"kind": "bearer", "secret_env": TOKEN_ENV},
            "timeout_s": 30,
            **settings,
        }
    )


def stored_uids(node: NodeProcess) -> set[str]:
    return {path.stem for path in (node.storage / "studies").rglob("*.dcm")}


def test_stow_over_https_with_bearer_token_to_a_dicom_node(
    secured_node: NodeProcess, pki: Pki, instances: list[Path]
) -> None:
    config = bearer_destination(
        f"{secured_node.http_url}/dicomweb", tls={"ca_certificates": str(pki.ca)}
    )
    send_dicomweb(config, instances)
    assert stored_uids(secured_node) == {sop_instance_uid(path) for path in instances}


def test_stow_over_https_refuses_a_server_outside_its_ca(
    secured_node: NodeProcess, pki: Pki, instances: list[Path]
) -> None:
    config = bearer_destination(
        f"{secured_node.http_url}/dicomweb", tls={"ca_certificates": str(pki.other_ca)}
    )
    with pytest.raises(DispatchError, match="CERTIFICATE_VERIFY_FAILED"):
        send_dicomweb(config, instances)
    assert stored_uids(secured_node) == set()


def test_stow_answered_202_fails_with_the_failure_reason(
    start_node: NodeFactory, instances: list[Path], tmp_path: Path
) -> None:
    receiver = start_node({"dimse": {"workers": 1}, "storage": {"on_duplicate": "reject"}})
    url = f"{receiver.http_url}/dicomweb"
    send_dicomweb(DicomWebDestinationConfig(kind="dicomweb", url=url), instances[:1])
    changed = pydicom.dcmread(instances[0])
    changed.SeriesDescription = "changed after it was sent"
    conflicting = tmp_path / "conflicting.dcm"
    changed.save_as(conflicting)
    with pytest.raises(DispatchError, match=r"answered 202 .*: .*0x0111"):
        send_dicomweb(
            DicomWebDestinationConfig(kind="dicomweb", url=url), [conflicting, instances[1]]
        )
    assert sop_instance_uid(instances[1]) in stored_uids(receiver)
