"""A real Orthanc as Query/Retrieve SCU of the node: Orthanc has the node as a DICOM modality,
the node has Orthanc as a C-MOVE destination. Orthanc queries (C-FIND) and retrieves
(C-MOVE); the study lands in Orthanc with the bytes the node stored."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.conftest import NodeFactory
from tests.support.dicom import dataset_bytes, storescu
from tests.support.node import NodeProcess
from tests.support.orthanc import ORTHANC_AE, OrthancProcess
from tests.support.peers import free_port, shared_data

MR_SERIES = ("mr", "dcmqa_decubitus_t1_sag_HFS")
LIVER_IMAGES = ("seg_sr", "dcmqi_ct3slice_liver", "image")
NODE_AE = "DICOM_NODE"


def post(orthanc: OrthancProcess, path: str, body: Any, timeout_s: float = 120) -> Any:
    request = urllib.request.Request(
        f"{orthanc.url}{path}",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def peers(start_node: NodeFactory, tmp_path: Path) -> Iterator[tuple[NodeProcess, OrthancProcess]]:
    node_port, orthanc_port = free_port(), free_port()
    orthanc = OrthancProcess(
        tmp_path / "orthanc",
        modalities={"node": [NODE_AE, "127.0.0.1", node_port]},
        dicom_port=orthanc_port,
    ).start()
    try:
        node = start_node(
            {
                "dimse": {"port": node_port},
                "destinations": {
                    "orthanc": {
                        "kind": "dimse",
                        "ae_title": ORTHANC_AE,
                        "host": "127.0.0.1",
                        "port": orthanc_port,
                    }
                },
            }
        )
        yield node, orthanc
    finally:
        orthanc.stop()


def stored_datasets(node: NodeProcess) -> dict[str, bytes]:
    return {path.stem: dataset_bytes(path) for path in (node.storage / "studies").rglob("*.dcm")}


def store_two_studies(node: NodeProcess) -> list[Path]:
    mr = sorted(shared_data(*MR_SERIES).glob("*.dcm"))
    liver = sorted(shared_data(*LIVER_IMAGES).glob("*.dcm"))
    assert storescu(node.dimse_port, [*mr, *liver]).returncode == 0
    return mr


def test_orthanc_queries_the_node(peers: tuple[NodeProcess, OrthancProcess]) -> None:
    node, orthanc = peers
    mr = store_two_studies(node)
    query = post(
        orthanc, "/modalities/node/query", {"Level": "Study", "Query": {"PatientID": "crlab"}}
    )
    answers = orthanc.get(f"/queries/{query['ID']}/answers")
    assert answers == ["0"]
    content = orthanc.get(f"/queries/{query['ID']}/answers/0/content?simplify")
    header = pydicom.dcmread(mr[0], stop_before_pixels=True)
    assert content["StudyInstanceUID"] == header.StudyInstanceUID
    assert content["PatientID"] == "crlab"


def test_orthanc_retrieves_a_queried_study_by_c_move(
    peers: tuple[NodeProcess, OrthancProcess],
) -> None:
    node, orthanc = peers
    mr = store_two_studies(node)
    query = post(
        orthanc, "/modalities/node/query", {"Level": "Study", "Query": {"PatientID": "crlab"}}
    )
    post(
        orthanc,
        f"/queries/{query['ID']}/retrieve",
        {"TargetAet": ORTHANC_AE, "Synchronous": True},
    )
    instances = orthanc.get("/instances")
    assert len(instances) == len(mr)
    stored = stored_datasets(node)
    for instance_id in instances:
        tags = orthanc.get(f"/instances/{instance_id}/simplified-tags")
        received = Path(node.workdir / "from-orthanc.dcm")
        received.write_bytes(orthanc.file(instance_id))
        assert dataset_bytes(received) == stored[tags["SOPInstanceUID"]]


def test_orthanc_moves_a_series_from_the_node(peers: tuple[NodeProcess, OrthancProcess]) -> None:
    node, orthanc = peers
    mr = store_two_studies(node)
    header = pydicom.dcmread(mr[0], stop_before_pixels=True)
    post(
        orthanc,
        "/modalities/node/move",
        {
            "Level": "Series",
            "Resources": [
                {
                    "StudyInstanceUID": header.StudyInstanceUID,
                    "SeriesInstanceUID": header.SeriesInstanceUID,
                }
            ],
            "TargetAet": ORTHANC_AE,
            "Synchronous": True,
        },
    )
    series = orthanc.get("/series")
    assert len(series) == 1
    assert len(orthanc.get(f"/series/{series[0]}")["Instances"]) == len(mr)
