"""HTTP served by several worker processes sharing one port (http.workers): each serves,
a killed one is replaced while the other keeps serving, STOW/QIDO across them, and a
stopping node lets a running request finish; health is 503 while the main process
is stuck."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import NodeFactory
from tests.support.dicomweb import STOW_TYPE, multipart_body, stow
from tests.support.node import NodeProcess
from tests.support.phantom import write_ct_series
from tests.support.processes import wait_until, worker_pids

HTTP_WORKER = "dicom_node.http.workers"


@pytest.fixture
def node(start_node: NodeFactory) -> NodeProcess:
    return start_node({"http": {"workers": 2}})


def health(node: NodeProcess) -> httpx.Response:
    # httpx.get opens a new connection each time, so the kernel picks a worker each time.
    return httpx.get(f"{node.http_url}/api/health", timeout=10)


def test_configured_number_of_http_workers_run(node: NodeProcess) -> None:
    assert len(worker_pids(node, HTTP_WORKER)) == 2
    assert health(node).json()["http_workers"] == {"running": 2, "configured": 2}


def test_each_http_worker_serves_while_the_other_is_paused(node: NodeProcess) -> None:
    for paused in worker_pids(node, HTTP_WORKER):
        os.kill(paused, signal.SIGSTOP)
        try:
            codes = [health(node).status_code for _ in range(5)]
        finally:
            os.kill(paused, signal.SIGCONT)
        assert codes == [200] * 5


def test_concurrent_requests_all_succeed(node: NodeProcess) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: health(node).status_code, range(40)))
    assert codes == [200] * 40


def test_requests_succeed_right_after_an_http_worker_is_killed(node: NodeProcess) -> None:
    killed, _ = worker_pids(node, HTTP_WORKER)
    os.kill(killed, signal.SIGKILL)
    assert [health(node).status_code for _ in range(10)] == [200] * 10


def test_a_killed_http_worker_is_restarted(node: NodeProcess) -> None:
    killed, survivor = worker_pids(node, HTTP_WORKER)
    os.kill(killed, signal.SIGKILL)

    def replaced() -> bool:
        pids = worker_pids(node, HTTP_WORKER)
        return len(pids) == 2 and killed not in pids and survivor in pids

    assert wait_until(replaced, timeout_s=30)
    assert wait_until(lambda: health(node).json()["status"] == "ok")
    assert health(node).json()["http_workers"] == {"running": 2, "configured": 2}
    node.terminate()
    assert "http-worker" in node.log()
    assert "exited with code -9; restarting it" in node.log()


def test_stow_from_concurrent_clients_is_found_by_qido(node: NodeProcess, tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ct", 8, size=64)
    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda part: stow(node.http_url, [part]).status_code, files))
    assert codes == [200] * 8
    for _ in range(4):  # new connections: each answer comes from either worker
        response = httpx.get(f"{node.http_url}/dicomweb/studies/{study}/instances", timeout=10)
        assert response.status_code == 200
        assert len(response.json()) == 8


def test_sigterm_lets_a_running_request_finish(node: NodeProcess, tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ct", 2, size=64)
    body = multipart_body([path.read_bytes() for path in files])
    assert node.process is not None
    main_pid = node.process.pid

    def slow_body() -> Iterator[bytes]:
        yield body[:100]
        os.kill(main_pid, signal.SIGTERM)
        assert wait_until(lambda: node.log().count("Shutting down") == 2)
        yield body[100:]

    response = httpx.post(
        f"{node.http_url}/dicomweb/studies",
        content=slow_body(),
        headers={"Content-Type": STOW_TYPE},
        timeout=30,
    )
    assert response.status_code == 200
    assert node.terminate() == 0
    assert "dicom-node stopped" in node.log()


def test_health_is_503_while_the_main_process_does_not_answer(node: NodeProcess) -> None:
    assert node.process is not None
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: health(node).status_code == 503, timeout_s=20)
        assert health(node).json()["title"] == "Supervisor not answering"
    finally:
        os.kill(node.process.pid, signal.SIGCONT)
    assert wait_until(lambda: health(node).status_code == 200)
