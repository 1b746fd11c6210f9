"""Series completion: quiet period, announced count, operator request, re-opening."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.phantom import write_ct_series


def get(node: NodeProcess, path: str) -> Any:
    response = httpx.get(f"{node.http_url}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_state(node: NodeProcess, uid: str, state: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        series = get(node, f"/api/series/{uid}")
        if series["state"] == state or time.monotonic() > deadline:
            return series
        time.sleep(0.1)


def small_series(folder: Path, count: int, **tags: Any) -> tuple[list[Path], str]:
    files = write_ct_series(folder, count, size=32)
    for path in files:
        dataset = pydicom.dcmread(path)
        for keyword, value in tags.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)
    return files, str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def test_quiet_series_becomes_ready(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node({"series": {"stable_after_s": 1}})
    files, uid = small_series(tmp_path / "series", 4)
    assert storescu(node.dimse_port, files).returncode == 0
    series = wait_for_state(node, uid, "ready")
    assert series["state"] == "ready"
    assert series["ready_reason"] == "stable"
    assert series["ready_count"] == 1


def test_announced_count_makes_series_ready_before_quiet_period(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = start_node({"series": {"stable_after_s": 600}})
    files, uid = small_series(tmp_path / "series", 6, ImagesInAcquisition=6)
    assert storescu(node.dimse_port, files).returncode == 0
    series = wait_for_state(node, uid, "ready")
    assert (series["state"], series["ready_reason"]) == ("ready", "expected_count")
    assert series["expected_instances"] == 6
    assert series["expected_from"] == "images_in_acquisition:ImagesInAcquisition=6"


def test_incomplete_announced_series_waits(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node({"series": {"stable_after_s": 600, "check_interval_s": 0.2}})
    files, uid = small_series(tmp_path / "series", 6, ImagesInAcquisition=7)
    assert storescu(node.dimse_port, files).returncode == 0
    deadline = time.monotonic() + 2  # ten completion checks
    while time.monotonic() < deadline:
        assert get(node, f"/api/series/{uid}")["state"] == "receiving"
        time.sleep(0.2)
    assert get(node, f"/api/series/{uid}")["expected_instances"] == 7


def test_operator_request_makes_series_ready(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node({"series": {"stable_after_s": 600}})
    files, uid = small_series(tmp_path / "series", 3)
    assert storescu(node.dimse_port, files).returncode == 0
    response = httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "series_instance_uid": uid,
        "instance_count": 3,
        "reason": "requested",
        "jobs": [],
    }
    assert get(node, f"/api/series/{uid}")["state"] == "ready"


def test_instance_after_ready_reopens_series(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node({"series": {"stable_after_s": 600}})
    files, uid = small_series(tmp_path / "series", 4)
    assert storescu(node.dimse_port, files[:3]).returncode == 0
    assert httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=10).status_code == 200
    assert storescu(node.dimse_port, files[3:]).returncode == 0
    reopened = get(node, f"/api/series/{uid}")
    assert (reopened["state"], reopened["instance_count"]) == ("receiving", 4)
    assert httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=10).status_code == 200
    assert get(node, f"/api/series/{uid}")["ready_count"] == 2


def test_identical_resend_does_not_reopen(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node({"series": {"stable_after_s": 600}})
    files, uid = small_series(tmp_path / "series", 3)
    assert storescu(node.dimse_port, files).returncode == 0
    assert httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=10).status_code == 200
    assert storescu(node.dimse_port, files).returncode == 0
    assert get(node, f"/api/series/{uid}")["state"] == "ready"


def test_ready_request_for_unknown_series_is_a_404_problem(node: NodeProcess) -> None:
    response = httpx.post(f"{node.http_url}/api/series/1.2.3.4/ready", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_reopened_series_gets_a_new_job_and_an_identical_one_does_not(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = start_node(
        {
            "series": {"stable_after_s": 600},
            "routes": [
                {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_basic", "send_to": []}
            ],
        }
    )
    files, uid = small_series(tmp_path / "series", 4)

    def ready() -> list[int]:
        response = httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=10)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert storescu(node.dimse_port, files[:3]).returncode == 0
    first = ready()
    assert storescu(node.dimse_port, files[:3]).returncode == 0  # identical re-send
    assert ready() == first
    assert storescu(node.dimse_port, files[3:]).returncode == 0  # the series grows
    second = ready()
    assert len(first) == len(second) == 1
    assert second != first
    listed = get(node, f"/api/jobs?series={uid}")
    assert sorted(job["instance_count"] for job in listed) == [3, 4]
