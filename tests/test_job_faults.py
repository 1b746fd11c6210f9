"""Faults around jobs and dispatch: destination down, dead letters, a node killed mid-job."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom

from dicom_node.phantom import write_phantom_series
from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.orthanc import ORTHANC_AE, OrthancProcess
from tests.support.peers import free_port
from tests.support.results import jobs, wait_delivered


def node_sending_to(
    start_node: NodeFactory, port: int, *, workdir: Path | None = None, **destination: Any
) -> NodeProcess:
    return start_node(
        {
            "series": {"stable_after_s": 600},
            "destinations": {
                "pacs": {
                    "kind": "dimse",
                    "ae_title": ORTHANC_AE,
                    "host": "127.0.0.1",
                    "port": port,
                    "retry_backoff_s": 0.2,
                    "retry_backoff_max_s": 1.0,
                    **destination,
                }
            },
            "routes": [
                {
                    "name": "ct",
                    "match": {"Modality": "CT"},
                    "pipeline": "ct_basic",
                    "send_to": ["pacs"],
                }
            ],
        },
        workdir=workdir,
    )


def send_series(node: NodeProcess, folder: Path, shape: tuple[int, int, int]) -> str:
    files = write_phantom_series(folder, shape=shape, spacing=(3.0, 2.5, 2.5), seed=3)
    assert storescu(node.dimse_port, files).returncode == 0
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    response = httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["jobs"]) == 1
    return uid


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def counts(orthanc: OrthancProcess) -> dict[str, int]:
    return {modality: len(ids) for modality, ids in orthanc.instances_by_modality().items()}


def test_results_wait_in_outbox_until_destination_is_back(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    port = free_port()
    node = node_sending_to(start_node, port)
    uid = send_series(node, tmp_path / "series", (16, 64, 64))
    retried = wait_for(
        lambda: [d for j in jobs(node, uid) for d in j["deliveries"] if d["attempts"] >= 2],
        60,
        "two failed delivery attempts",
    )
    assert retried[0]["state"] in ("pending", "sending")
    assert "association" in (retried[0]["error"] or "")
    orthanc = OrthancProcess(tmp_path / "orthanc", dicom_port=port).start()
    try:
        wait_delivered(node, uid)
        assert (counts(orthanc).get("SEG"), counts(orthanc).get("SR")) == (1, 1)
    finally:
        orthanc.stop()


def test_dead_letter_is_visible_and_retried_on_request(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    port = free_port()
    node = node_sending_to(start_node, port, max_attempts=2)
    uid = send_series(node, tmp_path / "series", (16, 64, 64))
    dead = wait_for(
        lambda: [d for j in jobs(node, uid) for d in j["deliveries"] if d["state"] == "dead"],
        60,
        "a dead letter",
    )
    assert dead[0]["attempts"] == 2
    orthanc = OrthancProcess(tmp_path / "orthanc", dicom_port=port).start()
    try:
        job_id = jobs(node, uid)[0]["id"]
        retry = subprocess.run(
            [
                sys.executable,
                "-m",
                "dicom_node",
                "jobs",
                "retry",
                str(job_id),
                "--config",
                str(node.config_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert retry.returncode == 0, retry.stderr
        wait_delivered(node, uid)
        assert (counts(orthanc).get("SEG"), counts(orthanc).get("SR")) == (1, 1)
    finally:
        orthanc.stop()


def test_job_killed_with_node_completes_after_restart_without_duplicates(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    orthanc = OrthancProcess(tmp_path / "orthanc").start()
    try:
        workdir = tmp_path / "node"
        node = node_sending_to(start_node, orthanc.dicom_port, workdir=workdir)
        uid = send_series(node, tmp_path / "series", (120, 256, 256))
        wait_for(lambda: jobs(node, uid)[0]["state"] == "running", 60, "the job to run")
        node.kill()  # SIGKILL: the job worker dies with it
        restarted = node_sending_to(start_node, orthanc.dicom_port, workdir=workdir)
        found = wait_delivered(restarted, uid, timeout_s=300)
        assert len(found) == 1
        assert found[0]["attempts"] >= 1
        assert (counts(orthanc).get("SEG"), counts(orthanc).get("SR")) == (1, 1)
    finally:
        orthanc.stop()
