"""QIDO-RS (PS3.18 10.6) on a running node that received the test catalog by C-STORE (dcmtk
storescu): resources, matching, includefield, limit/offset, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset

from dicom_node.dicomweb.json_model import dataset_to_json
from tests.support.catalog import A1, A2, B1, C1, STUDIES, write_catalog
from tests.support.dicom import storescu
from tests.support.node import NodeProcess, base_config

DICOM_JSON = "application/dicom+json"
ALL_INSTANCES = sum(study.instance_count for study in STUDIES)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the module: every test here only reads."""
    workdir = tmp_path_factory.mktemp("qido")
    process = NodeProcess(workdir / "node", base_config(workdir / "node")).start()
    try:
        result = storescu(process.dimse_port, write_catalog(workdir / "files"))
        assert result.returncode == 0, result.stderr
        yield process
    finally:
        process.terminate()


def get(node: NodeProcess, path: str, params: Any = None, **headers: str) -> httpx.Response:
    return httpx.get(f"{node.http_url}/dicomweb{path}", params=params, headers=headers, timeout=30)


def search(node: NodeProcess, path: str, params: Any = None) -> list[dict[str, Any]]:
    response = get(node, path, params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == DICOM_JSON
    body = response.json()
    assert isinstance(body, list)
    return body


def values(match: dict[str, Any], tag: str) -> list[Any]:
    return list(match.get(tag, {}).get("Value", []))


def value(match: dict[str, Any], tag: str) -> Any:
    found = values(match, tag)
    return found[0] if found else None


def study_uids(matches: list[dict[str, Any]]) -> set[str]:
    return {value(match, "0020000D") for match in matches}


def test_studies_answer_the_default_attributes(node: NodeProcess) -> None:
    matches = {value(m, "0020000D"): m for m in search(node, "/studies")}
    assert matches.keys() == {study.uid for study in STUDIES}
    a1 = matches[A1.uid]
    assert value(a1, "00100010") == {"Alphabetic": A1.patient_name}
    assert value(a1, "00100020") == A1.patient_id
    assert (value(a1, "00080020"), value(a1, "00080030")) == (A1.date, A1.time)
    assert value(a1, "00080050") == A1.accession
    assert values(a1, "00080061") == A1.modalities
    assert value(a1, "00201206") == len(A1.series)
    assert value(a1, "00201208") == A1.instance_count
    assert value(a1, "00080056") == "ONLINE"
    assert value(a1, "00081190") == f"{node.http_url}/dicomweb/studies/{A1.uid}"
    assert "00081030" not in a1  # StudyDescription is not a default attribute


def test_ohif_study_list_request(node: NodeProcess) -> None:
    params = {
        "limit": "101",
        "offset": "0",
        "fuzzymatching": "false",
        "includefield": "00081030,00080060",
    }
    matches = {value(m, "0020000D"): m for m in search(node, "/studies", params)}
    assert matches.keys() == {study.uid for study in STUDIES}
    assert value(matches[A2.uid], "00081030") == A2.description


def test_includefield_by_keyword_repeated(node: NodeProcess) -> None:
    params = [("StudyInstanceUID", B1.uid), ("includefield", "StudyDescription")]
    params.append(("includefield", "TimezoneOffsetFromUTC"))
    (match,) = search(node, "/studies", params)
    assert value(match, "00081030") == B1.description
    assert value(match, "00080201") == B1.timezone_offset


def test_includefield_all_adds_every_index_attribute(node: NodeProcess) -> None:
    (match,) = search(node, "/studies", {"StudyInstanceUID": A1.uid, "includefield": "all"})
    assert value(match, "00081030") == A1.description
    assert match["00100021"] == {"vr": "LO"}  # IssuerOfPatientID: held by the index, empty
    assert value(match, "00201200") == 2  # NumberOfPatientRelatedStudies


@pytest.mark.parametrize("name", ["PatientID", "00100020"])
def test_matching_by_keyword_or_tag(node: NodeProcess, name: str) -> None:
    assert study_uids(search(node, "/studies", {name: A1.patient_id})) == {A1.uid, A2.uid}


@pytest.mark.parametrize("separator", [",", "\\"])
def test_uid_list_matching(node: NodeProcess, separator: str) -> None:
    params = {"StudyInstanceUID": f"{A2.uid}{separator}{B1.uid}"}
    assert study_uids(search(node, "/studies", params)) == {A2.uid, B1.uid}


def test_date_range_matching(node: NodeProcess) -> None:
    assert study_uids(search(node, "/studies", {"StudyDate": "20230101-20240131"})) == {
        A1.uid,
        A2.uid,
    }


def test_wildcard_person_name_ignores_case(node: NodeProcess) -> None:
    matches = search(node, "/studies", {"PatientName": "*LLER*"})
    assert study_uids(matches) == {B1.uid}
    assert value(matches[0], "00100010") == {"Alphabetic": B1.patient_name}


def test_modalities_in_study_comma_list(node: NodeProcess) -> None:
    matches = search(node, "/studies", {"ModalitiesInStudy": "PT,MR"})
    assert study_uids(matches) == {A1.uid, A2.uid, C1.uid}


def test_no_match_is_an_empty_array(node: NodeProcess) -> None:
    assert search(node, "/studies", {"PatientID": "NOBODY"}) == []


def test_series_of_a_study(node: NodeProcess) -> None:
    matches = search(node, f"/studies/{A1.uid}/series")
    assert [
        (value(m, "0020000E"), value(m, "00080060"), value(m, "00200011")) for m in matches
    ] == [(series.uid, series.modality, series.number) for series in A1.series]
    assert [value(m, "00201209") for m in matches] == [s.instances for s in A1.series]
    assert value(matches[0], "00081190") == (
        f"{node.http_url}/dicomweb/studies/{A1.uid}/series/{A1.series[0].uid}"
    )
    assert "00100020" not in matches[0]  # the study is fixed by the path


def test_all_series_carry_their_study_attributes(node: NodeProcess) -> None:
    matches = search(node, "/series", {"Modality": "MR"})
    assert {value(m, "0020000E") for m in matches} == {A2.series[0].uid, C1.series[0].uid}
    assert {value(m, "00100020") for m in matches} == {A2.patient_id, C1.patient_id}


def test_instances_of_a_series(node: NodeProcess) -> None:
    series = A1.series[0]
    matches = search(node, f"/studies/{A1.uid}/series/{series.uid}/instances")
    assert [value(m, "00080018") for m in matches] == [
        f"{series.uid}.{n}" for n in range(1, series.instances + 1)
    ]
    assert {
        (value(m, "00280010"), value(m, "00280011"), value(m, "00280100")) for m in matches
    } == {(8, 6, 16)}
    assert value(matches[0], "00081190") == (
        f"{node.http_url}/dicomweb/studies/{A1.uid}/series/{series.uid}/instances/{series.uid}.1"
    )


def test_instances_of_a_study_carry_their_series_attributes(node: NodeProcess) -> None:
    matches = search(node, f"/studies/{A1.uid}/instances")
    assert len(matches) == A1.instance_count
    assert sorted(value(m, "00080060") for m in matches) == ["CT", "CT", "CT", "PT"]


def test_limit_and_offset_page_through_instances(node: NodeProcess) -> None:
    everything = [value(m, "00080018") for m in search(node, "/instances")]
    page = [value(m, "00080018") for m in search(node, "/instances", {"limit": 3, "offset": 2})]
    assert len(everything) == ALL_INSTANCES
    assert page == everything[2:5]


def test_more_matches_than_the_limit_are_announced(node: NodeProcess) -> None:
    response = get(node, "/studies", {"limit": "1"})
    assert len(response.json()) == 1
    assert "There are additional results" in response.headers["warning"]


def test_fuzzy_matching_is_declined_with_a_warning(node: NodeProcess) -> None:
    response = get(node, "/studies", {"fuzzymatching": "true", "PatientName": "Doe^Jane"})
    assert study_uids(response.json()) == {A1.uid, A2.uid}
    assert "fuzzymatching parameter is not supported" in response.headers["warning"]


def test_application_json_is_acceptable(node: NodeProcess) -> None:
    response = get(node, "/studies", accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


def test_other_media_types_are_not_acceptable(node: NodeProcess) -> None:
    response = get(node, "/studies", accept="application/dicom+xml")
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"NoSuchKeyword": "1"}, "neither a DICOM keyword nor a tag"),
        ({"StudyDate": "2024-01-01"}, "StudyDate"),
        ({"limit": "-1"}, "limit must be a non-negative integer"),
        ({"SliceThickness": "1.5"}, "SliceThickness is not supported"),
        ({"00081110.00081150": "1.2.3"}, "sequence matching"),
        ({"includefield": "NotAKeyword"}, "neither a DICOM keyword nor a tag"),
        ({"fuzzymatching": "yes"}, "fuzzymatching must be true or false"),
    ],
)
def test_bad_parameters_are_400_problems(
    node: NodeProcess, params: dict[str, str], detail: str
) -> None:
    response = get(node, "/studies", params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_an_invalid_uid_in_the_path_is_400(node: NodeProcess) -> None:
    response = get(node, "/studies/1.2.abc/series")
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid UID"


def test_json_model_gives_bulk_data_by_uri(tmp_path: Path) -> None:
    dataset = Dataset()
    dataset.PatientName = "Doe^Jane"
    dataset.add_new(0x7FE00010, "OW", b"\0" * 4096)
    dataset.add_new(0x00091001, "OB", b"\1\2")
    encoded = dataset_to_json(dataset, lambda tag: f"bulk/{int(tag):08X}")
    assert encoded["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/7FE00010"}
    assert encoded["00091001"] == {"vr": "OB", "InlineBinary": "AQI="}
    assert encoded["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
