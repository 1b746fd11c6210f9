"""C-FIND SCP against dcmtk findscu: Patient Root and Study Root at each level, each kind of
matching (PS3.4 C.2.2.2), bad identifiers, cancel and the result cap.

Three studies are stored first: an MR series (patient crlab, 2022), three CT slices (patient
99000 JANCT000, 2003) and three CT slices (patient 123456, 2006)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND

from tests.conftest import NodeFactory
from tests.support.dicom import dcmtk, storescu
from tests.support.dimse_output import FinalResponse, final_response
from tests.support.node import NodeProcess, base_config
from tests.support.peers import shared_data

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
SUCCESS = 0x0000
REFUSED_OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
UNABLE_TO_PROCESS = 0xC000
CANCEL = 0xFE00


@dataclass
class Stored:
    node: NodeProcess
    mr: list[Path]
    liver: list[Path]
    labelmap: list[Path]

    def uid(self, files: list[Path], keyword: str) -> str:
        return str(pydicom.dcmread(files[0], stop_before_pixels=True).data_element(keyword).value)


def store_catalog(node: NodeProcess) -> Stored:
    stored = Stored(
        node=node,
        mr=sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm")),
        liver=sorted(shared_data("seg_sr", "dcmqi_ct3slice_liver", "image").glob("*.dcm")),
        labelmap=sorted(shared_data("seg_sr", "dcmqi_24x38x3_labelmap", "image").glob("*.dcm")),
    )
    result = storescu(node.dimse_port, [*stored.mr, *stored.liver, *stored.labelmap])
    assert result.returncode == 0, result.stderr
    return stored


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """One node for the read-only queries of this module (starting and filling a node per
    test cost about ten seconds each); tests that change the node start their own."""
    workdir = tmp_path_factory.mktemp("find-node")
    node = NodeProcess(workdir, base_config(workdir)).start()
    try:
        yield store_catalog(node)
    finally:
        node.terminate()


def findscu(
    node: NodeProcess, folder: Path, model: str, *keys: str, extra: tuple[str, ...] = ()
) -> tuple[list[pydicom.Dataset], FinalResponse]:
    """Run findscu; return the response identifiers (extracted with -X) and the final response."""
    folder.mkdir(parents=True, exist_ok=True)
    arguments: list[str] = ["-d", model, "-X", "-od", str(folder), *extra]
    for key in keys:
        arguments += ["-k", key]
    result = dcmtk("findscu", *arguments, "127.0.0.1", str(node.dimse_port))
    responses = [pydicom.dcmread(path) for path in sorted(folder.glob("rsp*.dcm"))]
    return responses, final_response(result.stdout + result.stderr)


def test_patient_level_universal_matching(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "PatientName",
        "NumberOfPatientRelatedStudies",
    )
    assert final.status == SUCCESS
    assert {(str(r.PatientID), str(r.PatientName)) for r in responses} == {
        ("crlab", "HFS"),
        ("99000", "JANCT000"),
        ("123456", "Anonymous"),
    }
    assert all(int(r.NumberOfPatientRelatedStudies) == 1 for r in responses)
    assert all(r.QueryRetrieveLevel == "PATIENT" for r in responses)


def test_study_level_single_value_matching(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        "PatientID=99000",
        "StudyInstanceUID",
        "StudyDate",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    )
    assert final.status == SUCCESS
    assert len(responses) == 1
    (response,) = responses
    assert response.StudyInstanceUID == catalog.uid(catalog.liver, "StudyInstanceUID")
    assert response.StudyDate == "20030417"
    assert response.ModalitiesInStudy == "CT"
    assert int(response.NumberOfStudyRelatedInstances) == len(catalog.liver)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("PatientName=JAN*", {"99000"}),
        ("PatientID=9900?", {"99000"}),
        ("PatientName=*o*", {"123456"}),  # Anonymous; HFS and JANCT000 have no lower-case o
    ],
)
def test_study_level_wildcard_matching(
    catalog: Stored, tmp_path: Path, key: str, expected: set[str]
) -> None:
    returned = [] if key.startswith("PatientID") else ["PatientID"]
    responses, final = findscu(
        catalog.node, tmp_path, "-S", "QueryRetrieveLevel=STUDY", key, *returned
    )
    assert final.status == SUCCESS
    assert {str(r.PatientID) for r in responses} == expected


@pytest.mark.parametrize(
    ("date_range", "expected"),
    [
        ("20030101-20101231", {"20030417", "20060101"}),
        ("20100101-", {"20220407"}),
        ("-20031231", {"20030417"}),
    ],
)
def test_study_level_date_range_matching(
    catalog: Stored, tmp_path: Path, date_range: str, expected: set[str]
) -> None:
    responses, final = findscu(
        catalog.node, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyDate={date_range}"
    )
    assert final.status == SUCCESS
    assert {str(r.StudyDate) for r in responses} == expected


def test_study_level_uid_list_matching(catalog: Stored, tmp_path: Path) -> None:
    wanted = {
        catalog.uid(catalog.mr, "StudyInstanceUID"),
        catalog.uid(catalog.labelmap, "StudyInstanceUID"),
    }
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID=" + "\\".join(sorted(wanted)),
    )
    assert final.status == SUCCESS
    assert {str(r.StudyInstanceUID) for r in responses} == wanted


def test_series_level_returns_series_attributes(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={catalog.uid(catalog.mr, 'StudyInstanceUID')}",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
    )
    assert final.status == SUCCESS
    assert len(responses) == 1
    (series,) = responses
    assert series.SeriesInstanceUID == catalog.uid(catalog.mr, "SeriesInstanceUID")
    assert series.Modality == "MR"
    assert int(series.SeriesNumber) == 3
    assert int(series.NumberOfSeriesRelatedInstances) == len(catalog.mr)


def test_image_level_patient_root_single_instance(catalog: Stored, tmp_path: Path) -> None:
    fifth = next(
        p for p in catalog.mr if pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber == 5
    )
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=IMAGE",
        "PatientID=crlab",
        f"StudyInstanceUID={catalog.uid(catalog.mr, 'StudyInstanceUID')}",
        f"SeriesInstanceUID={catalog.uid(catalog.mr, 'SeriesInstanceUID')}",
        "InstanceNumber=5",
        "SOPInstanceUID",
        "SOPClassUID",
    )
    assert final.status == SUCCESS
    assert [str(r.SOPInstanceUID) for r in responses] == [catalog.uid([fifth], "SOPInstanceUID")]
    assert responses[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"


def test_image_level_study_root_lists_every_instance(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={catalog.uid(catalog.liver, 'StudyInstanceUID')}",
        f"SeriesInstanceUID={catalog.uid(catalog.liver, 'SeriesInstanceUID')}",
        "SOPInstanceUID",
    )
    assert final.status == SUCCESS
    assert {str(r.SOPInstanceUID) for r in responses} == {
        catalog.uid([path], "SOPInstanceUID") for path in catalog.liver
    }


def test_retrieve_ae_title_is_returned_when_requested(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "RetrieveAETitle"
    )
    assert final.status == SUCCESS
    assert len(responses) == 3
    assert {str(r.RetrieveAETitle) for r in responses} == {"DICOM_NODE"}


def test_level_outside_the_model_is_identifier_does_not_match(
    node: NodeProcess, tmp_path: Path
) -> None:
    responses, final = findscu(node, tmp_path, "-S", "QueryRetrieveLevel=PATIENT")
    assert responses == []
    assert final.status == IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert final.offending_elements == ["(0008,0052)"]
    assert "QueryRetrieveLevel" in final.error_comment


def test_identifier_that_does_not_decode_is_unable_to_process(node: NodeProcess) -> None:
    ae = AE(ae_title="RAWFIND")
    ae.add_requested_context(STUDY_ROOT_FIND, "1.2.840.10008.1.2.1")
    association = ae.associate("127.0.0.1", node.dimse_port)
    assert association.is_established
    try:
        request = C_FIND()
        request.MessageID = 7
        request.AffectedSOPClassUID = STUDY_ROOT_FIND
        request.Priority = 2
        # (0008,0052) declared UL with 3 bytes: no UL value has 3 bytes.
        request.Identifier = BytesIO(b"\x08\x00\x52\x00UL\x03\x00abc\x00")
        context_id = association.accepted_contexts[0].context_id
        # pynetdicom's send_c_* pause its reactor the same way, so that the response is
        # read here and not taken by the reactor as unexpected.
        association._reactor_checkpoint.clear()
        while not association._is_paused:
            time.sleep(0.001)
        association.dimse.send_msg(request, context_id)
        _, response = association.dimse.get_msg(block=True)
        association._reactor_checkpoint.set()
    finally:
        association.release()
    assert response is not None
    assert response.Status == UNABLE_TO_PROCESS
    assert response.MessageIDBeingRespondedTo == 7
    assert "does not decode" in str(response.ErrorComment)


def test_findscu_cancel_ends_with_cancel_status(catalog: Stored, tmp_path: Path) -> None:
    responses, final = findscu(
        catalog.node,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={catalog.uid(catalog.mr, 'StudyInstanceUID')}",
        f"SeriesInstanceUID={catalog.uid(catalog.mr, 'SeriesInstanceUID')}",
        "SOPInstanceUID",
        "PatientName",
        "ImageType",
        extra=("--cancel", "1"),
    )
    assert final.status == CANCEL
    assert 1 <= len(responses) < len(catalog.mr)


def test_matches_beyond_max_find_results_are_refused(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    catalog = store_catalog(start_node({"dimse": {"max_find_results": 2}}))
    responses, final = findscu(
        catalog.node, tmp_path / "out", "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID"
    )
    assert len(responses) == 2
    assert final.status == REFUSED_OUT_OF_RESOURCES
    assert "more than 2 matches" in final.error_comment
