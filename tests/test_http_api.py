"""Admin API: health, series state and count, studies with paging, problem details."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.peers import shared_data

MR_SERIES = ("mr", "dcmqa_decubitus_t1_sag_HFS")


def get(node: NodeProcess, path: str) -> httpx.Response:
    return httpx.get(f"{node.http_url}{path}", timeout=10)


def test_health_reports_ok_with_counts(node: NodeProcess) -> None:
    response = get(node, "/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "sqlite"
    assert body["instances"] == 0
    assert body["ae_title"] == "DICOM_NODE"
    assert body["dimse_workers"]["running"] == body["dimse_workers"]["configured"] >= 1


def test_series_is_receiving_then_ready(start_node: NodeFactory) -> None:
    node = start_node({"series": {"stable_after_s": 1.5}})
    files = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[:5]
    assert storescu(node.dimse_port, files).returncode == 0
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    first = get(node, f"/api/series/{uid}").json()
    assert first["instance_count"] == 5
    assert first["state"] == "receiving"
    deadline = time.monotonic() + 20
    state = first["state"]
    while state != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = get(node, f"/api/series/{uid}").json()["state"]
    assert state == "ready"  # no route: handed over with no job


def test_unknown_series_is_a_404_problem(node: NodeProcess) -> None:
    response = get(node, "/api/series/1.2.3.4")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Series not found",
        "status": 404,
        "detail": "no instance of this series is stored",
    }


def test_invalid_uid_is_a_400_problem(node: NodeProcess) -> None:
    response = get(node, "/api/series/1.2.abc")
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid UID"


def test_studies_are_paged(node: NodeProcess, tmp_path: Path) -> None:
    source = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[0]
    files = []
    for number in range(3):
        dataset = pydicom.dcmread(source)
        dataset.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1.{number}"
        dataset.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1.{number}.1"
        dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{number}.1.1"
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        path = tmp_path / f"{number}.dcm"
        dataset.save_as(path)
        files.append(path)
        assert storescu(node.dimse_port, [path]).returncode == 0
    page = get(node, "/api/studies?limit=2&offset=0").json()
    assert page["total"] == 3
    assert [s["study_instance_uid"] for s in page["studies"]] == [
        "1.2.826.0.1.3680043.10.1.2",
        "1.2.826.0.1.3680043.10.1.1",
    ]
    rest = get(node, "/api/studies?limit=2&offset=2").json()
    assert [s["study_instance_uid"] for s in rest["studies"]] == ["1.2.826.0.1.3680043.10.1.0"]
    assert rest["studies"][0]["instance_count"] == 1


def test_bad_paging_parameters_are_a_400_problem(node: NodeProcess) -> None:
    response = get(node, "/api/studies?limit=0")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["location"] == "query.limit"
