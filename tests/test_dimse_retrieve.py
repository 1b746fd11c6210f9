"""C-MOVE and C-GET SCP against real peers: dcmtk movescu to a dcmtk storescp registered as
a destination, dcmtk getscu (and pynetdicom as C-GET SCU where the Failed SOP Instance UID
List must be read); counts, statuses and bytes checked."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt

from tests.conftest import NodeFactory
from tests.support.dicom import ReferenceStoreSCP, dataset_bytes, dcmtk, send_raw, storescu
from tests.support.dimse_output import FinalResponse, final_response
from tests.support.node import NodeProcess
from tests.support.peers import free_port, require_command, shared_data

MR_SERIES = ("mr", "dcmqa_decubitus_t1_sag_HFS")
LIVER_IMAGES = ("seg_sr", "dcmqi_ct3slice_liver", "image")
LABELMAP = ("seg_sr", "dcmqi_24x38x3_labelmap")
DESTINATION_AE = "STORESCP"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# Not known to dcmtk 3.6.7, so storescp and getscu do not accept it.
LABEL_MAP_SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.7"

SUCCESS = 0x0000
SUB_OPERATIONS_WITH_FAILURES = 0xB000
UNABLE_TO_PERFORM_SUB_OPERATIONS = 0xA702
MOVE_DESTINATION_UNKNOWN = 0xA801
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANCEL = 0xFE00


def header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def mr_files() -> list[Path]:
    return sorted(shared_data(*MR_SERIES).glob("*.dcm"))


@pytest.fixture
def destination(tmp_path: Path) -> Iterator[ReferenceStoreSCP]:
    scp = ReferenceStoreSCP(tmp_path / "received")
    yield scp
    scp.stop()


def node_with_destination(start_node: NodeFactory, port: int) -> NodeProcess:
    return start_node(
        {
            "destinations": {
                "reference": {
                    "kind": "dimse",
                    "ae_title": DESTINATION_AE,
                    "host": "127.0.0.1",
                    "port": port,
                    "timeout_s": 10,
                }
            }
        }
    )


def movescu(
    node: NodeProcess,
    *keys: str,
    model: str = "-S",
    move_destination: str = DESTINATION_AE,
    extra: tuple[str, ...] = (),
) -> FinalResponse:
    arguments: list[str] = ["-d", model, "-aem", move_destination, *extra]
    for key in keys:
        arguments += ["-k", key]
    result = dcmtk("movescu", *arguments, "127.0.0.1", str(node.dimse_port))
    return final_response(result.stdout + result.stderr)


def getscu(
    node: NodeProcess, folder: Path, *keys: str, model: str = "-S"
) -> tuple[FinalResponse, dict[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    arguments: list[str] = ["-d", model, "+B", "-od", str(folder)]
    for key in keys:
        arguments += ["-k", key]
    result = dcmtk("getscu", *arguments, "127.0.0.1", str(node.dimse_port))
    received = {str(header(path).SOPInstanceUID): path for path in folder.iterdir()}
    return final_response(result.stdout + result.stderr), received


def assert_same_datasets(node: NodeProcess, sent: list[Path], received: dict[str, Path]) -> None:
    """Each instance arrived with the dataset bytes the node stored (storescu may have
    re-encoded implicit VR files as explicit VR, the syntax the node prefers)."""
    stored = {path.stem: path for path in (node.storage / "studies").rglob("*.dcm")}
    assert len(received) == len(sent)
    for path in sent:
        uid = str(header(path).SOPInstanceUID)
        assert dataset_bytes(received[uid]) == dataset_bytes(stored[uid])


def completed(count: int, failed: int = 0) -> dict[str, int]:
    return {"completed": count, "failed": failed, "warning": 0}


def test_movescu_study_arrives_byte_identical(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    files = mr_files()
    assert storescu(node.dimse_port, files).returncode == 0
    final = movescu(
        node, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={header(files[0]).StudyInstanceUID}"
    )
    assert (final.status, final.counts) == (SUCCESS, completed(len(files)))
    received = destination.by_sop_instance_uid()
    assert_same_datasets(node, files, received)
    assert all(
        dataset_bytes(received[str(header(path).SOPInstanceUID)]) == dataset_bytes(path)
        for path in files
    )


def test_movescu_patient_level_in_patient_root(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    liver = sorted(shared_data(*LIVER_IMAGES).glob("*.dcm"))
    assert storescu(node.dimse_port, [*mr_files(), *liver]).returncode == 0
    final = movescu(node, "QueryRetrieveLevel=PATIENT", "PatientID=99000", model="-P")
    assert (final.status, final.counts) == (SUCCESS, completed(len(liver)))
    assert_same_datasets(node, liver, destination.by_sop_instance_uid())


def test_movescu_image_level_uid_list(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    files = mr_files()
    assert storescu(node.dimse_port, files).returncode == 0
    wanted = [files[3], files[20]]
    final = movescu(
        node,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={header(files[0]).StudyInstanceUID}",
        f"SeriesInstanceUID={header(files[0]).SeriesInstanceUID}",
        "SOPInstanceUID=" + "\\".join(str(header(path).SOPInstanceUID) for path in wanted),
    )
    assert (final.status, final.counts) == (SUCCESS, completed(2))
    assert_same_datasets(node, wanted, destination.by_sop_instance_uid())


def test_unknown_move_destination_is_refused(node: NodeProcess) -> None:
    files = mr_files()[:1]
    assert storescu(node.dimse_port, files).returncode == 0
    final = movescu(
        node,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={header(files[0]).StudyInstanceUID}",
        move_destination="NOBODY",
    )
    assert final.status == MOVE_DESTINATION_UNKNOWN
    assert "NOBODY" in final.error_comment


def test_move_without_unique_key_is_identifier_does_not_match(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    final = movescu(node, "QueryRetrieveLevel=SERIES", "Modality=MR")
    assert final.status == IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert final.offending_elements == ["(0020,000e)"]


def test_move_to_unreachable_destination_fails_every_sub_operation(
    start_node: NodeFactory,
) -> None:
    node = node_with_destination(start_node, free_port())  # nothing listens there
    files = mr_files()[:4]
    assert storescu(node.dimse_port, files).returncode == 0
    final = movescu(
        node, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={header(files[0]).StudyInstanceUID}"
    )
    assert (final.status, final.counts) == (UNABLE_TO_PERFORM_SUB_OPERATIONS, completed(0, 4))
    assert sorted(final.failed_sop_instance_uids) == sorted(
        str(header(path).SOPInstanceUID) for path in files
    )


def test_move_counts_instances_the_destination_refuses(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    files = sorted(shared_data(*LABELMAP).rglob("*.dcm"))
    assert all(status == SUCCESS for status, _ in send_raw(node.dimse_port, files))
    by_class: dict[str, set[str]] = {}
    for path in files:
        by_class.setdefault(header(path).SOPClassUID, set()).add(header(path).SOPInstanceUID)
    refused = by_class.pop(LABEL_MAP_SEGMENTATION)
    accepted = set().union(*by_class.values())
    final = movescu(
        node, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={header(files[0]).StudyInstanceUID}"
    )
    assert final.status == SUB_OPERATIONS_WITH_FAILURES
    assert final.counts == completed(len(accepted), len(refused))
    assert set(final.failed_sop_instance_uids) == refused
    assert set(destination.by_sop_instance_uid()) == accepted


def test_movescu_cancel_stops_the_sub_operations(
    start_node: NodeFactory, destination: ReferenceStoreSCP
) -> None:
    node = node_with_destination(start_node, destination.port)
    files = mr_files()
    assert storescu(node.dimse_port, files).returncode == 0
    final = movescu(
        node,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={header(files[0]).StudyInstanceUID}",
        extra=("--cancel", "1"),
    )
    assert final.status == CANCEL
    sent = final.counts["completed"]
    assert 1 <= sent < len(files)
    assert len(destination.by_sop_instance_uid()) == sent


def compressed_copies(folder: Path, files: list[Path]) -> list[Path]:
    """JPEG Lossless (process 14, SV1) copies made with dcmtk."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in files:
        target = folder / path.name
        result = dcmtk("dcmcjpeg", "+un", path, target)
        assert result.returncode == 0, result.stderr
        copies.append(target)
    return copies


def assert_same_pixels(originals: list[Path], received: dict[str, Path], syntax: str) -> None:
    assert len(received) == len(originals)
    for path in originals:
        original = pydicom.dcmread(path)
        copy = pydicom.dcmread(received[str(original.SOPInstanceUID)])
        assert copy.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(copy.pixel_array, original.pixel_array)


def test_move_converts_when_destination_takes_only_uncompressed(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    received = tmp_path / "uncompressed"
    received.mkdir()
    port = free_port()
    # Without +xa storescp accepts uncompressed transfer syntaxes only.
    scp = subprocess.Popen(
        [require_command("storescp"), "-od", str(received), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TCP_NODELAY="1"),
    )
    try:
        deadline = time.monotonic() + 20
        while dcmtk("echoscu", "127.0.0.1", str(port), timeout=10).returncode != 0:
            assert scp.poll() is None, "storescp exited"
            assert time.monotonic() < deadline, "storescp did not start"
        node = node_with_destination(start_node, port)
        originals = mr_files()[:3]
        copies = compressed_copies(tmp_path / "jpeg", originals)
        assert storescu(node.dimse_port, copies, "-xs").returncode == 0
        final = movescu(
            node,
            "QueryRetrieveLevel=STUDY",
            f"StudyInstanceUID={header(originals[0]).StudyInstanceUID}",
        )
    finally:
        scp.terminate()
        scp.wait(timeout=10)
    assert (final.status, final.counts) == (SUCCESS, completed(3))
    files = {str(header(path).SOPInstanceUID): path for path in received.iterdir()}
    assert_same_pixels(originals, files, "1.2.840.10008.1.2.1")


def test_getscu_study_arrives_byte_identical(node: NodeProcess, tmp_path: Path) -> None:
    files = mr_files()
    assert storescu(node.dimse_port, files).returncode == 0
    final, received = getscu(
        node,
        tmp_path / "got",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={header(files[0]).StudyInstanceUID}",
    )
    assert (final.status, final.counts) == (SUCCESS, completed(len(files)))
    assert_same_datasets(node, files, received)


def test_getscu_series_level_in_patient_root(node: NodeProcess, tmp_path: Path) -> None:
    files = mr_files()
    liver = sorted(shared_data(*LIVER_IMAGES).glob("*.dcm"))
    assert storescu(node.dimse_port, [*files, *liver]).returncode == 0
    final, received = getscu(
        node,
        tmp_path / "got",
        "QueryRetrieveLevel=SERIES",
        "PatientID=crlab",
        f"StudyInstanceUID={header(files[0]).StudyInstanceUID}",
        f"SeriesInstanceUID={header(files[0]).SeriesInstanceUID}",
        model="-P",
    )
    assert (final.status, final.counts) == (SUCCESS, completed(len(files)))
    assert_same_datasets(node, files, received)


def test_get_converts_compressed_instances_for_uncompressed_requestor(
    node: NodeProcess, tmp_path: Path
) -> None:
    originals = mr_files()[:3]
    copies = compressed_copies(tmp_path / "jpeg", originals)
    assert storescu(node.dimse_port, copies, "-xs").returncode == 0
    # getscu proposes uncompressed syntaxes only unless told otherwise.
    final, received = getscu(
        node,
        tmp_path / "got",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={header(originals[0]).StudyInstanceUID}",
    )
    assert (final.status, final.counts) == (SUCCESS, completed(3))
    assert_same_pixels(originals, received, "1.2.840.10008.1.2.1")


def test_get_fails_instances_without_a_storage_context(node: NodeProcess, tmp_path: Path) -> None:
    """A C-GET requestor that took the SCP role for CT Image Storage only: the other
    instances of the study fail, and the final Warning names them (pynetdicom as SCU; dcmtk
    3.6.7 getscu does not read the identifier of a C-GET response)."""
    files = sorted(shared_data(*LABELMAP).rglob("*.dcm"))
    assert all(status == SUCCESS for status, _ in send_raw(node.dimse_port, files))
    ct = {str(header(p).SOPInstanceUID) for p in files if header(p).SOPClassUID == CT_IMAGE_STORAGE}
    others = {str(header(p).SOPInstanceUID) for p in files} - ct
    stored: list[str] = []

    def handle_store(event: evt.Event) -> int:
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return SUCCESS

    ae = AE(ae_title="PYGETSCU")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CT_IMAGE_STORAGE)
    association = ae.associate(
        "127.0.0.1",
        node.dimse_port,
        ext_neg=[build_role(CT_IMAGE_STORAGE, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, handle_store)],
    )
    assert association.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = header(files[0]).StudyInstanceUID
    try:
        responses = list(association.send_c_get(identifier, STUDY_ROOT_GET))
    finally:
        association.release()
    status, answer = responses[-1]
    assert status.Status == SUB_OPERATIONS_WITH_FAILURES
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (
        len(ct),
        len(others),
    )
    assert set(answer.FailedSOPInstanceUIDList) == others
    assert set(stored) == ct


def test_get_without_unique_key_is_identifier_does_not_match(
    node: NodeProcess, tmp_path: Path
) -> None:
    final, received = getscu(node, tmp_path / "got", "QueryRetrieveLevel=STUDY", "PatientID=x")
    assert received == {}
    assert final.status == IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert final.offending_elements == ["(0020,000d)"]
