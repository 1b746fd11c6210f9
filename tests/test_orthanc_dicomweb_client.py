"""A real Orthanc (DICOMweb plugin) with the node configured as one of its DICOMweb servers
(`DicomWeb.Servers`): it retrieves a study from the node (WADO-RS) and STOWs a study into it
(STOW-RS), PS3.18. Bytes are compared by dataset (after the File Meta Information).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.orthanc import OrthancProcess
from tests.support.peers import missing
from tests.support.phantom import write_ct_series
from tests.support.storage_check import dataset_bytes, stored_files

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
SLICES = 6


@pytest.fixture
def orthanc(tmp_path: Path, node: NodeProcess) -> Iterator[OrthancProcess]:
    if not DICOMWEB_PLUGIN.is_file():
        missing(f"the Orthanc DICOMweb plugin {DICOMWEB_PLUGIN} (Debian orthanc-dicomweb)")
    peer = OrthancProcess(
        tmp_path / "orthanc",
        settings={
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "Servers": {"node": [f"{node.http_url}/dicomweb/"]},
            },
        },
    ).start()
    yield peer
    peer.stop()


def sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def post_orthanc(orthanc: OrthancProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{orthanc.url}{path}", json=body, timeout=120)


def orthanc_instances(orthanc: OrthancProcess, folder: Path) -> dict[str, bytes]:
    """Every instance Orthanc holds: dataset bytes by SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for instance_id in orthanc.get("/instances"):
        path = folder / f"{instance_id}.dcm"
        path.write_bytes(orthanc.file(instance_id))
        found[sop_instance_uid(path)] = dataset_bytes(path)
    return found


def upload_to_orthanc(orthanc: OrthancProcess, files: list[Path]) -> str:
    """POST the files to Orthanc's REST API; the Orthanc id of their study."""
    study_ids = set()
    for path in files:
        response = httpx.post(f"{orthanc.url}/instances", content=path.read_bytes(), timeout=30)
        assert response.status_code == 200, response.text
        study_ids.add(response.json()["ParentStudy"])
    assert len(study_ids) == 1
    return study_ids.pop()


def test_orthanc_retrieves_a_study_from_the_node(
    node: NodeProcess, orthanc: OrthancProcess, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "sent", SLICES, size=64, patient_name="ORTHANC^RETRIEVE")
    originals = {sop_instance_uid(path): dataset_bytes(path) for path in files}
    assert storescu(node.dimse_port, files).returncode == 0
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)

    response = post_orthanc(
        orthanc, "/dicom-web/servers/node/retrieve", {"Resources": [{"Study": study_uid}]}
    )

    assert response.status_code == 200, f"{response.text}\n{orthanc.log()}\n{node.log()}"
    assert orthanc_instances(orthanc, tmp_path / "orthanc-files") == originals


def test_orthanc_stows_a_study_into_the_node(
    node: NodeProcess, orthanc: OrthancProcess, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "sent", SLICES, size=64, patient_name="ORTHANC^STOW")
    originals = {sop_instance_uid(path): dataset_bytes(path) for path in files}
    series_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    study_id = upload_to_orthanc(orthanc, files)

    response = post_orthanc(
        orthanc, "/dicom-web/servers/node/stow", {"Resources": [study_id], "Synchronous": True}
    )

    assert response.status_code == 200, f"{response.text}\n{orthanc.log()}\n{node.log()}"
    summary = httpx.get(f"{node.http_url}/api/series/{series_uid}", timeout=10)
    assert summary.status_code == 200, summary.text
    assert summary.json()["instance_count"] == SLICES
    stored = {sop_instance_uid(path): dataset_bytes(path) for path in stored_files(node.storage)}
    assert stored == originals
