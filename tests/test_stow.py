"""STOW-RS (PS3.18 10.5) against a real node: status codes, the response module, what is on disk."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.conftest import NodeFactory
from tests.support.dicomweb import BOUNDARY, STOW_TYPE, multipart_body, stow
from tests.support.node import NodeProcess, base_config, deep_merge
from tests.support.peers import shared_data
from tests.support.phantom import write_ct_series
from tests.support.storage_check import dataset_bytes, index_rows, stored_files

JSON = "application/dicom+json"
RETRIEVE_URL, FAILED, REFERENCED = "00081190", "00081198", "00081199"
SOP_CLASS, SOP_INSTANCE, FAILURE, WARNING = "00081150", "00081155", "00081197", "00081196"


def _values(body: dict[str, Any], tag: str) -> list[Any]:
    return list(body.get(tag, {}).get("Value", []))


def _failures(body: dict[str, Any]) -> list[int]:
    return [item[FAILURE]["Value"][0] for item in _values(body, FAILED)]


def _post(node: NodeProcess, body: bytes, content_type: str = STOW_TYPE) -> httpx.Response:
    return httpx.post(
        f"{node.http_url}/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type},
        timeout=60,
    )


def _stored_by_uid(node: NodeProcess) -> dict[str, Path]:
    return {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): path
        for path in stored_files(node.storage)
    }


def _counts(node: NodeProcess) -> tuple[int, int]:
    return len(stored_files(node.storage)), len(index_rows(node.workdir / "index.sqlite"))


class _Unchanged:
    """Checks that a request left storage and index as they were (nodes are shared)."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.before = _counts(node)

    def __bool__(self) -> bool:
        return _counts(self.node) == self.before


def _module_node(
    factory: pytest.TempPathFactory, overrides: dict[str, Any]
) -> Iterator[NodeProcess]:
    workdir = factory.mktemp("node")
    node = NodeProcess(workdir, deep_merge(base_config(workdir), overrides)).start()
    yield node
    node.terminate()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the module: a node start costs seconds; tests check what they added."""
    yield from _module_node(tmp_path_factory, {})


@pytest.fixture(scope="module")
def small_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    yield from _module_node(tmp_path_factory, {"http": {"max_request_bytes": 64 * 1024}})


@pytest.fixture
def phantom(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "phantom", 3, size=128)


def test_phantom_series_is_stored_byte_for_byte(node: NodeProcess, phantom: list[Path]) -> None:
    response = stow(node.http_url, phantom)
    assert response.status_code == 200, response.text
    stored = _stored_by_uid(node)
    for path in phantom:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert dataset_bytes(stored[uid]) == dataset_bytes(path)


def test_response_lists_each_instance_with_its_retrieve_url(
    node: NodeProcess, phantom: list[Path]
) -> None:
    response = stow(node.http_url, phantom)
    assert response.headers["content-type"] == JSON
    body = response.json()
    first = pydicom.dcmread(phantom[0], stop_before_pixels=True)
    study_url = f"{node.http_url}/dicomweb/studies/{first.StudyInstanceUID}"
    assert _values(body, RETRIEVE_URL) == [study_url]
    items = _values(body, REFERENCED)
    assert FAILED not in body
    assert {item[SOP_INSTANCE]["Value"][0] for item in items} == {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in phantom
    }
    assert all(item[SOP_CLASS]["Value"] == [str(first.SOPClassUID)] for item in items)
    assert all(item[RETRIEVE_URL]["Value"][0].startswith(study_url + "/series/") for item in items)


def test_real_seg_sr_and_implicit_vr_files_are_stored_byte_for_byte(node: NodeProcess) -> None:
    files = [
        shared_data("seg_sr", "highdicom_ct2", "seg_image_ct_binary.dcm"),
        shared_data("seg_sr", "highdicom_ct2", "sr_document.dcm"),
        shared_data("seg_sr", "highdicom_ct2", "ct_image.dcm"),
        *sorted(shared_data("seg_sr", "dcmqi_ct3slice_liver", "image").glob("*.dcm")),
        shared_data("mr", "pydicom_data_enhanced_mr", "emri_small.dcm"),
    ]
    response = stow(node.http_url, files)
    assert response.status_code == 200, response.text
    stored = _stored_by_uid(node)
    for path in files:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert dataset_bytes(stored[uid]) == dataset_bytes(path), path.name


def test_instances_with_empty_uids_are_repaired_with_a_warning(node: NodeProcess) -> None:
    files = sorted(shared_data("ct", "totalseg_example_ct_dicom", "dicom").glob("*.dcm"))[:3]
    before = _counts(node)[0]
    response = stow(node.http_url, files)
    assert response.status_code == 202, response.text
    items = _values(response.json(), REFERENCED)
    assert [item[WARNING]["Value"] for item in items] == [[0xB000]] * 3
    assert _counts(node)[0] == before + 3


def test_a_part_that_is_not_dicom_fails_alone(node: NodeProcess, phantom: list[Path]) -> None:
    body = multipart_body([phantom[0].read_bytes(), b"this is not a DICOM file"])
    before = _counts(node)[0]
    response = _post(node, body)
    assert response.status_code == 202, response.text
    result = response.json()
    assert _failures(result) == [0xC000]
    assert len(_values(result, REFERENCED)) == 1
    assert _counts(node)[0] == before + 1


def test_only_bad_parts_is_a_conflict(node: NodeProcess, phantom: list[Path]) -> None:
    unchanged = _Unchanged(node)
    truncated = phantom[0].read_bytes()[:-1000]
    response = _post(node, multipart_body([b"\x00" * 200, truncated]))
    assert response.status_code == 409, response.text
    assert _failures(response.json()) == [0xC000, 0xC000]
    assert unchanged


def test_instance_of_another_study_fails_on_a_study_url(
    node: NodeProcess, phantom: list[Path]
) -> None:
    unchanged = _Unchanged(node)
    response = stow(node.http_url, phantom[:1], study=generate_uid())
    assert response.status_code == 409, response.text
    assert _failures(response.json()) == [0xA900]
    assert unchanged


def test_instance_of_the_named_study_is_stored_on_a_study_url(
    node: NodeProcess, phantom: list[Path]
) -> None:
    study = str(pydicom.dcmread(phantom[0], stop_before_pixels=True).StudyInstanceUID)
    assert stow(node.http_url, phantom, study=study).status_code == 200


def test_unsupported_sop_class_fails_with_0122(node: NodeProcess, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(write_ct_series(tmp_path / "odd", 1, size=16)[0])
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5"
    odd = tmp_path / "odd.dcm"
    dataset.save_as(odd, enforce_file_format=True)
    response = stow(node.http_url, [odd])
    assert response.status_code == 409
    assert _failures(response.json()) == [0x0122]


def test_sop_class_differing_from_the_file_meta_fails_with_a900(
    node: NodeProcess, tmp_path: Path
) -> None:
    data = write_ct_series(tmp_path / "mismatch", 1, size=16)[0].read_bytes()
    ct, mr = b"1.2.840.10008.5.1.4.1.1.2\x00", b"1.2.840.10008.5.1.4.1.1.4\x00"
    mismatch = tmp_path / "mismatch.dcm"
    mismatch.write_bytes(data.replace(ct, mr, 1))  # the first one is in the File Meta
    response = stow(node.http_url, [mismatch])
    assert response.status_code == 409
    assert _failures(response.json()) == [0xA900]


def test_duplicate_with_policy_reject_fails_with_0111(
    start_node: NodeFactory, phantom: list[Path], tmp_path: Path
) -> None:
    node = start_node({"storage": {"on_duplicate": "reject"}})
    assert stow(node.http_url, phantom[:1]).status_code == 200
    changed = pydicom.dcmread(phantom[0])
    changed.SeriesDescription = "changed"
    again = tmp_path / "again.dcm"
    changed.save_as(again, enforce_file_format=True)
    response = stow(node.http_url, [again])
    assert response.status_code == 409
    assert _failures(response.json()) == [0x0111]


@pytest.mark.parametrize(
    "content_type",
    [
        f"multipart/related; boundary={BOUNDARY}",  # no type: the parts say application/dicom
        f'multipart/related; type=application/dicom; boundary="{BOUNDARY}"',
    ],
)
def test_type_parameter_may_be_absent_and_boundary_quoted(
    node: NodeProcess, phantom: list[Path], content_type: str
) -> None:
    response = _post(node, multipart_body([phantom[0].read_bytes()]), content_type)
    assert response.status_code == 200, response.text


def test_part_of_another_type_fails_when_the_request_names_no_type(
    node: NodeProcess, phantom: list[Path]
) -> None:
    body = multipart_body([phantom[0].read_bytes()], content_type="application/dicom+json")
    response = _post(node, body, f"multipart/related; boundary={BOUNDARY}")
    assert response.status_code == 409
    assert _failures(response.json()) == [0xC000]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
        f"multipart/form-data; boundary={BOUNDARY}",
    ],
)
def test_wrong_media_type_is_415(node: NodeProcess, phantom: list[Path], content_type: str) -> None:
    unchanged = _Unchanged(node)
    response = _post(node, multipart_body([phantom[0].read_bytes()]), content_type)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert unchanged


def _malformed(phantom: list[Path]) -> dict[str, tuple[bytes, str]]:
    good = multipart_body([phantom[0].read_bytes(), phantom[1].read_bytes()])
    return {
        "no boundary parameter": (good, 'multipart/related; type="application/dicom"'),
        "other boundary": (good, STOW_TYPE.replace(BOUNDARY, "not-the-one")),
        "truncated": (good[: len(good) // 2], STOW_TYPE),
        "no close delimiter": (good[: -len(f"--{BOUNDARY}--\r\n")], STOW_TYPE),
        "no parts": (f"--{BOUNDARY}--\r\n".encode(), STOW_TYPE),
        "headers not terminated": (f"--{BOUNDARY}\r\nContent-Type: x".encode(), STOW_TYPE),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no boundary parameter",
        "other boundary",
        "truncated",
        "no close delimiter",
        "no parts",
        "headers not terminated",
    ],
)
def test_malformed_multipart_is_400_and_stores_nothing(
    node: NodeProcess, phantom: list[Path], case: str
) -> None:
    unchanged = _Unchanged(node)
    body, content_type = _malformed(phantom)[case]
    response = _post(node, body, content_type)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert unchanged


def test_oversized_body_by_content_length_is_413_and_stores_nothing(
    small_node: NodeProcess, phantom: list[Path]
) -> None:
    unchanged = _Unchanged(small_node)
    response = _post(small_node, multipart_body([path.read_bytes() for path in phantom]))
    assert response.status_code == 413
    assert unchanged


def test_oversized_chunked_body_is_413_and_stores_nothing(
    small_node: NodeProcess, phantom: list[Path]
) -> None:
    unchanged = _Unchanged(small_node)
    body = multipart_body([path.read_bytes() for path in phantom])

    def chunks() -> Any:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = httpx.post(
        f"{small_node.http_url}/dicomweb/studies",
        content=chunks(),
        headers={"Content-Type": STOW_TYPE},
        timeout=60,
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert unchanged


def test_body_within_the_limit_is_stored(small_node: NodeProcess, phantom: list[Path]) -> None:
    assert stow(small_node.http_url, phantom[:1]).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/dicomweb/studies/..%2F..%2Fetc",
        "/dicomweb/studies/../../etc",
        "/dicomweb/studies/..",
        "/dicomweb/studies/1.2.3%2F..%2F4",
        "/dicomweb/studies/1.2.abc",
    ],
)
def test_traversal_or_invalid_study_uid_is_400(
    node: NodeProcess, phantom: list[Path], path: str
) -> None:
    # http.client sends the path as written (httpx would normalise the dot segments away).
    unchanged = _Unchanged(node)
    connection = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    connection.request(
        "POST",
        path,
        body=multipart_body([phantom[0].read_bytes()]),
        headers={"Content-Type": STOW_TYPE},
    )
    response = connection.getresponse()
    assert response.status == 400
    assert response.getheader("content-type") == "application/problem+json"
    connection.close()
    assert unchanged
