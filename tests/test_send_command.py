"""`dicom-node send` and the embedded default: phantom -> node -> ct_basic, results kept."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import NodeFactory
from tests.support.results import jobs


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_phantom_sent_with_send_command_is_segmented_and_kept(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = start_node(
        {
            "series": {"stable_after_s": 1},
            "routes": [
                {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_basic", "send_to": []}
            ],
        }
    )
    folder = tmp_path / "phantom"
    made = run_cli("phantom", "--out", str(folder), "--size", "96", "--slices", "40")
    assert made.returncode == 0, made.stderr
    sent = run_cli("send", str(folder), "--to", f"DICOM_NODE@127.0.0.1:{node.dimse_port}")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "sent 40 of 40 instance(s) to DICOM_NODE"
    assert "40/40 sent, 0 failed" in sent.stderr
    deadline = time.monotonic() + 120
    while not [job for job in jobs(node) if job["state"] == "succeeded"]:
        assert time.monotonic() < deadline, jobs(node)
        time.sleep(0.25)
    job = jobs(node)[0]
    assert job["pipeline"] == "ct_basic"
    assert job["deliveries"] == []
    assert len(job["result_instances"]) == 2
    studies = httpx.get(f"{node.http_url}/api/studies", timeout=10).json()["studies"]
    # The results are in the source's study: 40 CT + 1 SEG + 1 SR.
    assert [study["instance_count"] for study in studies] == [42]
    listed = run_cli("jobs", "list", "--config", str(node.config_path))
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()[1:]
    assert line.split()[:4] == [str(job["id"]), "succeeded", "ct_basic", "-"]


def test_send_to_a_closed_port_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "phantom"
    assert run_cli("phantom", "--out", str(folder), "--size", "32", "--slices", "2").returncode == 0
    sent = run_cli("send", str(folder), "--to", "NOBODY@127.0.0.1:1")
    assert sent.returncode == 1
    assert "association with NOBODY@127.0.0.1:1 refused or failed" in sent.stderr


def test_send_rejects_a_malformed_peer(tmp_path: Path) -> None:
    sent = run_cli("send", str(tmp_path), "--to", "127.0.0.1:11112")
    assert sent.returncode == 2
    assert "is not AE@HOST:PORT" in sent.stderr
