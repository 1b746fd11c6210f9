"""serve: the ready line, clean SIGTERM with a running association, association logging."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import dcmtk, storescu
from tests.support.node import NodeProcess
from tests.support.peers import require_command, shared_data
from tests.support.phantom import write_ct_series
from tests.support.processes import wait_until, worker_pids


def test_ready_line_names_both_listening_ports(node: NodeProcess) -> None:
    assert node.stdout_lines[0] == (
        f"ready dimse=127.0.0.1:{node.dimse_port} http=127.0.0.1:{node.http_port}"
    )
    assert httpx.get(f"{node.http_url}/api/health", timeout=10).status_code == 200
    assert dcmtk("echoscu", "127.0.0.1", str(node.dimse_port)).returncode == 0


def test_sigterm_with_idle_node_exits_0_and_closes_the_index(node: NodeProcess) -> None:
    assert node.terminate() == 0
    assert "dicom-node stopped" in node.log()
    # The last connection closing checkpoints SQLite's WAL and removes it.
    assert not (node.workdir / "index.sqlite-wal").exists()


def test_sigterm_during_a_transfer_finishes_or_aborts_it_cleanly(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = start_node({"dimse": {"shutdown_grace_s": 1}})
    files = write_ct_series(tmp_path / "ct", 150)
    sender = subprocess.Popen(
        [require_command("storescu"), "127.0.0.1", str(node.dimse_port), *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((node.storage / "studies").rglob("*.dcm")):
        time.sleep(0.02)
    started = time.monotonic()
    assert node.terminate(timeout_s=30) == 0
    assert time.monotonic() - started < 15
    sender.communicate(timeout=60)
    assert list((node.storage / ".incoming").iterdir()) == []
    log = node.log()
    assert "dicom-node stopped" in log
    assert "association aborted" in log or "association released" in log
    assert not (node.workdir / "index.sqlite-wal").exists()


def test_association_is_logged_once_without_patient_identifiers(
    node: NodeProcess, tmp_path: Path
) -> None:
    dataset = pydicom.dcmread(sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*"))[0])
    dataset.PatientName = "SECRETNAME^JOHN"
    dataset.PatientID = "SECRET-ID-123"
    path = tmp_path / "phi.dcm"
    dataset.save_as(path)
    assert (
        storescu(node.dimse_port, [path], "-aet", "MODALITY1", "-aec", "DICOM_NODE").returncode == 0
    )
    node.terminate()
    log = node.log()
    lines = [line for line in log.splitlines() if "association released" in line]
    assert len(lines) == 1
    assert "calling=MODALITY1 called=DICOM_NODE" in lines[0]
    assert "stored=1 warnings=0 failed=0" in lines[0]
    assert "peer=127.0.0.1:" in lines[0]
    assert "SECRETNAME" not in log
    assert "SECRET-ID-123" not in log


def test_configured_number_of_dimse_workers_run(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"workers": 3}})
    assert len(worker_pids(node)) == 3


def test_configured_number_of_job_workers_run(start_node: NodeFactory) -> None:
    node = start_node({"executor": {"workers": 2}})
    assert len(worker_pids(node, "dicom_node.jobs.worker")) == 2
    health = httpx.get(f"{node.http_url}/api/health", timeout=10).json()
    assert health["job_workers"] == {"running": 2, "configured": 2}


def test_a_dead_job_worker_is_restarted(start_node: NodeFactory) -> None:
    node = start_node()
    (worker,) = worker_pids(node, "dicom_node.jobs.worker")
    os.kill(worker, signal.SIGKILL)
    assert wait_until(lambda: worker_pids(node, "dicom_node.jobs.worker") not in ([], [worker]))
    node.terminate()
    assert "job-worker" in node.log()
    assert "exited with code -9; restarting it" in node.log()


def test_a_dead_worker_is_restarted(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"workers": 1}})
    (worker,) = worker_pids(node)
    os.kill(worker, signal.SIGKILL)
    assert wait_until(lambda: len(worker_pids(node)) == 1 and worker_pids(node) != [worker])
    assert dcmtk("echoscu", "127.0.0.1", str(node.dimse_port)).returncode == 0
    node.terminate()
    assert "exited with code -9; restarting it" in node.log()


def test_workers_die_with_a_killed_node(start_node: NodeFactory) -> None:
    node = start_node({"dimse": {"workers": 2}})
    workers = worker_pids(node)
    node.kill()
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
