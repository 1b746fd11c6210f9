"""The query engine shared by C-FIND and QIDO-RS (PS3.4 C.2.2, C.6), on a real index and real
stored files (InstanceStore, the durable path every instance takes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.config import IGNORE
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import event

from dicom_node.config import DuplicatePolicy, MissingUidPolicy
from dicom_node.index import Index
from dicom_node.query import (
    InformationModel,
    QueryError,
    QueryLevel,
    QueryLevelError,
    build_query,
    query_from_identifier,
    run_query,
)
from dicom_node.query import engine as query_engine
from dicom_node.storage import InstanceStore, Receipt, StorageArea
from tests.support.catalog import A1, A2, B1, C1, STUDIES, catalog_datasets
from tests.support.dicom import dataset_bytes
from tests.support.peers import shared_data
from tests.support.postgres import PostgresServer, running_postgres

STUDY_ROOT = InformationModel.STUDY_ROOT
PATIENT_ROOT = InformationModel.PATIENT_ROOT


@dataclass(frozen=True)
class Archive:
    index: Index
    area: StorageArea


def _open_store(folder: Path, url: str | None = None) -> tuple[Index, StorageArea, InstanceStore]:
    area = StorageArea(root=folder / "storage")
    area.prepare()
    index = Index(url or f"sqlite:///{folder / 'index.sqlite'}")
    store = InstanceStore(
        area, index, on_duplicate=DuplicatePolicy.REPLACE, missing_uids=MissingUidPolicy.REFUSE
    )
    return index, area, store


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    """The catalog stored through InstanceStore, indexed in SQLite or a real PostgreSQL (their
    pattern matching differs: GLOB vs LIKE)."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_schema()
    index, area, store = _open_store(tmp_path_factory.mktemp("archive"), url)
    for dataset in catalog_datasets():
        store.store_dataset(dataset, Receipt(transfer_syntax_uid=ExplicitVRLittleEndian))
    yield Archive(index, area)
    store.close()
    index.close()


def identifier(level: str, **keys: Any) -> Dataset:
    """A C-FIND identifier as a peer may send it (values not validated: peers send anything)."""
    dataset = Dataset()
    dataset.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        element = DataElement(
            tag, dictionary_VR(tag), value if value != "" else None, validation_mode=IGNORE
        )
        dataset.add(element)
    return dataset


def find(
    archive: Archive,
    request: Dataset,
    model: InformationModel = STUDY_ROOT,
    **options: Any,
) -> list[Dataset]:
    query = query_from_identifier(request, model)
    return list(run_query(archive.index, archive.area, query, **options))


def study_uids(responses: list[Dataset]) -> set[str]:
    return {str(response.StudyInstanceUID) for response in responses}


def test_study_level_returns_the_requested_keys_from_the_index(archive: Archive) -> None:
    request = identifier(
        "STUDY",
        StudyInstanceUID=A1.uid,
        PatientName="",
        PatientID="",
        StudyDate="",
        StudyTime="",
        AccessionNumber="",
        StudyDescription="",
        ModalitiesInStudy="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    (response,) = find(archive, request)
    assert {element.keyword for element in response} == {
        *(element.keyword for element in request),
    }
    assert str(response.PatientName) == A1.patient_name
    assert response.PatientID == A1.patient_id
    assert (response.StudyDate, response.StudyTime) == (A1.date, A1.time)
    assert response.AccessionNumber == A1.accession
    assert response.StudyDescription == A1.description
    assert list(response.ModalitiesInStudy) == A1.modalities
    assert response.NumberOfStudyRelatedSeries == len(A1.series)
    assert response.NumberOfStudyRelatedInstances == A1.instance_count
    assert response.QueryRetrieveLevel == "STUDY"


def test_universal_matching_returns_every_study(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyInstanceUID=""))
    assert study_uids(responses) == {study.uid for study in STUDIES}


def test_studies_come_newest_study_date_first(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyDate=""))
    dates = [response.StudyDate or "" for response in responses]
    assert dates == sorted(dates, reverse=True)


def test_single_value_matching_is_exact(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", AccessionNumber="ACC-A"))
    assert responses == []


def test_person_name_matching_ignores_case(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", PatientName="DOE^JANE"))
    assert study_uids(responses) == {A1.uid, A2.uid}


def test_person_name_wildcard_ignores_case(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", PatientName="m*"))
    assert study_uids(responses) == {B1.uid}


def test_question_mark_matches_one_character(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", AccessionNumber="ACC-A?"))
    assert study_uids(responses) == {A1.uid, A2.uid}


@pytest.mark.parametrize("pattern", ["ACC_*", "*%"])
def test_sql_pattern_characters_match_literally(archive: Archive, pattern: str) -> None:
    responses = find(archive, identifier("STUDY", AccessionNumber=pattern))
    assert study_uids(responses) == {B1.uid}


def test_wildcard_matching_of_other_text_is_case_sensitive(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyDescription="ct*"))
    assert responses == []


def test_uid_list_matching(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyInstanceUID=f"{A1.uid}\\{B1.uid}"))
    assert study_uids(responses) == {A1.uid, B1.uid}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240101-", {A1.uid, B1.uid}),
        ("-20231231", {A2.uid}),
        ("20230620-20240105", {A1.uid, A2.uid}),
        ("20241231", {B1.uid}),
    ],
)
def test_date_range_matching(archive: Archive, value: str, expected: set[str]) -> None:
    responses = find(archive, identifier("STUDY", StudyDate=value))
    assert study_uids(responses) == expected


def test_an_empty_date_matches_no_range(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyDate="-20991231"))
    assert C1.uid not in study_uids(responses)


def test_upper_time_bound_includes_the_minute_it_names(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyTime="-1015"))
    assert study_uids(responses) == {A1.uid, A2.uid}


def test_lower_time_bound(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyTime="1016-"))
    assert study_uids(responses) == {B1.uid}


def test_date_and_time_ranges_combine_as_separate_keys(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", StudyDate="20240101-", StudyTime="-1200"))
    assert study_uids(responses) == {A1.uid}


def test_modalities_in_study_matching_returns_all_modalities(archive: Archive) -> None:
    (response,) = find(archive, identifier("STUDY", ModalitiesInStudy="PT"))
    assert list(response.ModalitiesInStudy) == ["CT", "PT"]


def test_modalities_in_study_list_matching(archive: Archive) -> None:
    responses = find(archive, identifier("STUDY", ModalitiesInStudy="PT\\MR"))
    assert study_uids(responses) == {A1.uid, A2.uid, C1.uid}


def test_patient_level_counts_related_entities(archive: Archive) -> None:
    request = identifier(
        "PATIENT",
        PatientID="PAT-A",
        PatientName="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="",
    )
    (response,) = find(archive, request, PATIENT_ROOT)
    assert str(response.PatientName) == A1.patient_name
    assert response.NumberOfPatientRelatedStudies == 2
    assert response.NumberOfPatientRelatedSeries == len(A1.series) + len(A2.series)
    assert response.NumberOfPatientRelatedInstances == A1.instance_count + A2.instance_count


def test_series_level_lists_the_series_of_a_study_by_number(archive: Archive) -> None:
    request = identifier(
        "SERIES",
        StudyInstanceUID=A1.uid,
        SeriesInstanceUID="",
        Modality="",
        SeriesNumber="",
        SeriesDescription="",
        NumberOfSeriesRelatedInstances="",
    )
    responses = find(archive, request)
    assert [
        (r.SeriesInstanceUID, r.Modality, r.SeriesNumber, r.SeriesDescription) for r in responses
    ] == [(s.uid, s.modality, s.number, s.description) for s in A1.series]
    assert [r.NumberOfSeriesRelatedInstances for r in responses] == [s.instances for s in A1.series]


def test_image_level_in_the_patient_root_returns_the_unique_keys_above(archive: Archive) -> None:
    series = A1.series[0]
    request = identifier(
        "IMAGE",
        PatientID=A1.patient_id,
        StudyInstanceUID=A1.uid,
        SeriesInstanceUID=series.uid,
        InstanceNumber="",
    )
    responses = find(archive, request, PATIENT_ROOT)
    assert [r.InstanceNumber for r in responses] == list(range(1, series.instances + 1))
    assert {(r.PatientID, r.StudyInstanceUID, r.SeriesInstanceUID) for r in responses} == {
        (A1.patient_id, A1.uid, series.uid)
    }
    assert [r.SOPInstanceUID for r in responses] == [
        f"{series.uid}.{n}" for n in range(1, series.instances + 1)
    ]


def test_integer_matching(archive: Archive) -> None:
    series = A1.series[0]
    request = identifier(
        "IMAGE", StudyInstanceUID=A1.uid, SeriesInstanceUID=series.uid, InstanceNumber="2"
    )
    (response,) = find(archive, request)
    assert response.SOPInstanceUID == f"{series.uid}.2"


def test_keys_the_index_lacks_come_from_the_stored_file(archive: Archive) -> None:
    request = identifier("STUDY", StudyInstanceUID="", TimezoneOffsetFromUTC="")
    responses = {r.StudyInstanceUID: r for r in find(archive, request)}
    assert responses[B1.uid].TimezoneOffsetFromUTC == B1.timezone_offset
    assert responses[A1.uid].TimezoneOffsetFromUTC == ""


def test_instance_keys_the_index_lacks_come_from_the_instance_file(archive: Archive) -> None:
    series = A2.series[0]
    request = identifier(
        "IMAGE",
        StudyInstanceUID=A2.uid,
        SeriesInstanceUID=series.uid,
        BitsAllocated="",
        SliceThickness="",
    )
    responses = find(archive, request)
    assert [(r.BitsAllocated, r.SliceThickness) for r in responses] == [(16, 1.5)] * 2


def test_non_ascii_text_is_returned_in_utf8(archive: Archive) -> None:
    (response,) = find(archive, identifier("STUDY", StudyInstanceUID=B1.uid, PatientName=""))
    assert response.SpecificCharacterSet == "ISO_IR 192"
    assert str(response.PatientName) == B1.patient_name


def test_ascii_responses_carry_no_character_set(archive: Archive) -> None:
    (response,) = find(archive, identifier("STUDY", StudyInstanceUID=A1.uid, PatientName=""))
    assert "SpecificCharacterSet" not in response


def test_limit_and_offset_slice_the_ordered_matches(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = build_query(STUDY_ROOT, QueryLevel.IMAGE, {}, [])
    everything = [r.SOPInstanceUID for r in run_query(archive.index, archive.area, query)]
    monkeypatch.setattr(query_engine, "PAGE_SIZE", 2)  # several keyset pages
    paged = [
        r.SOPInstanceUID for r in run_query(archive.index, archive.area, query, limit=5, offset=2)
    ]
    assert len(everything) == sum(study.instance_count for study in STUDIES)
    assert paged == everything[2:7]


def test_results_are_read_page_by_page(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_engine, "PAGE_SIZE", 1)
    statements: list[str] = []

    def count(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(archive.index.engine, "before_cursor_execute", count)
    try:
        results = run_query(
            archive.index, archive.area, build_query(STUDY_ROOT, QueryLevel.IMAGE, {}, [])
        )
        next(results)
        after_first = len(statements)
        remaining = sum(1 for _ in results)
    finally:
        event.remove(archive.index.engine, "before_cursor_execute", count)
    assert after_first == 1
    # One statement per page of one, and one finding the end.
    assert len(statements) == remaining + 2


def test_study_root_has_no_patient_level() -> None:
    with pytest.raises(QueryLevelError, match="not a level of the study root"):
        query_from_identifier(identifier("PATIENT", PatientID=""), STUDY_ROOT)


def test_query_retrieve_level_is_required() -> None:
    with pytest.raises(QueryLevelError, match=r"\(0008,0052\) QueryRetrieveLevel is missing"):
        query_from_identifier(Dataset(), STUDY_ROOT)


def test_hierarchical_series_query_needs_the_study_uid() -> None:
    with pytest.raises(QueryLevelError, match="StudyInstanceUID must be given as a single value"):
        query_from_identifier(identifier("SERIES", Modality="CT"), STUDY_ROOT)


def test_patient_root_study_query_needs_the_patient_id() -> None:
    with pytest.raises(QueryLevelError, match="PatientID must be given as a single value"):
        query_from_identifier(identifier("STUDY", PatientID="PAT*"), PATIENT_ROOT)


def test_matching_on_a_lower_level_key_is_refused() -> None:
    with pytest.raises(QueryLevelError, match="SERIES level key") as caught:
        query_from_identifier(identifier("STUDY", Modality="CT"), STUDY_ROOT)
    assert caught.value.offending_tags == (0x00080060,)


def test_matching_on_a_key_outside_the_index_is_refused() -> None:
    with pytest.raises(QueryError, match="SliceThickness is not supported") as caught:
        query_from_identifier(identifier("STUDY", SliceThickness="1.5"), STUDY_ROOT)
    assert caught.value.offending_tags == (0x00180050,)


def test_sequence_matching_is_refused() -> None:
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    with pytest.raises(QueryError, match="sequence matching is not supported"):
        query_from_identifier(identifier("STUDY", ReferencedStudySequence=[item]), STUDY_ROOT)


def test_counts_are_return_keys_only() -> None:
    with pytest.raises(QueryError, match="return key only"):
        query_from_identifier(identifier("STUDY", NumberOfStudyRelatedSeries="2"), STUDY_ROOT)


@pytest.mark.parametrize("value", ["2024-01-01", "2024010", "20240101-20230101", "-"])
def test_malformed_dates_are_refused(value: str) -> None:
    with pytest.raises(QueryError, match="StudyDate"):
        query_from_identifier(identifier("STUDY", StudyDate=value), STUDY_ROOT)


def test_wildcards_in_uids_are_refused() -> None:
    with pytest.raises(QueryError, match="wild card matching is not allowed for VR UI"):
        query_from_identifier(identifier("STUDY", StudyInstanceUID="1.2.*"), STUDY_ROOT)


def test_real_instances_are_answered_as_stored(tmp_path: Path) -> None:
    files = sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm"))[:3]
    index, area, store = _open_store(tmp_path)
    try:
        for path in files:
            syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
            store.store(dataset_bytes(path), Receipt(transfer_syntax_uid=syntax))
        originals = {
            str(ds.SOPInstanceUID): ds
            for ds in (pydicom.dcmread(path, stop_before_pixels=True) for path in files)
        }
        first = next(iter(originals.values()))
        request = identifier(
            "IMAGE",
            StudyInstanceUID=first.StudyInstanceUID,
            SeriesInstanceUID=first.SeriesInstanceUID,
            SOPInstanceUID="",
            SOPClassUID="",
            InstanceNumber="",
            Rows="",
            Columns="",
            ImageOrientationPatient="",
        )
        query = query_from_identifier(request, STUDY_ROOT)
        responses = list(run_query(index, area, query))
    finally:
        store.close()
        index.close()
    assert {r.SOPInstanceUID for r in responses} == originals.keys()
    for response in responses:
        original = originals[response.SOPInstanceUID]
        for keyword in ("SOPClassUID", "InstanceNumber", "Rows", "Columns"):
            assert response[keyword].value == original[keyword].value, keyword
        assert list(response.ImageOrientationPatient) == list(original.ImageOrientationPatient)
