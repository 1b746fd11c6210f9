"""C-ECHO and C-STORE against a running node with dcmtk, on real data from ../shared/data."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import NodeFactory
from tests.support.dicom import ReferenceStoreSCP, dataset_bytes, dcmtk, send_raw, storescu
from tests.support.node import NodeProcess
from tests.support.peers import shared_data

MR_SERIES = ("mr", "dcmqa_decubitus_t1_sag_HFS")
CT_EMPTY_UIDS = ("ct", "totalseg_example_ct_dicom", "dicom")
COERCION = 0xB000
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_SOP_INSTANCE = 0x0111


def stored_files(node: NodeProcess) -> list[Path]:
    return sorted((node.storage / "studies").rglob("*.dcm"))


def stored_by_uid(node: NodeProcess) -> dict[str, Path]:
    return {path.stem: path for path in stored_files(node)}


def series(node: NodeProcess, uid: str) -> dict[str, object]:
    response = httpx.get(f"{node.http_url}/api/series/{uid}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_echoscu_gets_success(node: NodeProcess) -> None:
    result = dcmtk("echoscu", "-v", "127.0.0.1", str(node.dimse_port))
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stderr


def test_storescu_series_is_indexed_and_byte_identical(node: NodeProcess) -> None:
    files = sorted(shared_data(*MR_SERIES).glob("*.dcm"))
    result = storescu(node.dimse_port, files)
    assert result.returncode == 0, result.stderr
    stored = stored_by_uid(node)
    for path in files:
        sop_instance_uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(stored[sop_instance_uid]) == dataset_bytes(path)
    series_uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    assert series(node, series_uid)["instance_count"] == len(files)


@pytest.mark.parametrize(
    ("encoder", "encoder_args", "propose", "transfer_syntax"),
    [
        ("dcmcjpeg", (), "-xs", "1.2.840.10008.1.2.4.70"),
        ("dcmcjpls", (), "-xt", "1.2.840.10008.1.2.4.80"),
        ("dcmcrle", (), "-xr", "1.2.840.10008.1.2.5"),
        ("dcmconv", ("+td",), "-xd", "1.2.840.10008.1.2.1.99"),
        ("dcmconv", ("+ti",), "-xi", "1.2.840.10008.1.2"),
        ("dcmconv", ("+tb",), "-xb", "1.2.840.10008.1.2.2"),
    ],
)
def test_compressed_and_other_syntaxes_are_stored_as_received(
    node: NodeProcess,
    tmp_path: Path,
    encoder: str,
    encoder_args: tuple[str, ...],
    propose: str,
    transfer_syntax: str,
) -> None:
    source = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[:3]
    encoded = []
    for path in source:
        target = tmp_path / path.name
        result = dcmtk(encoder, *encoder_args, path, target)
        assert result.returncode == 0, result.stderr
        encoded.append(target)
    result = storescu(node.dimse_port, encoded, propose)
    assert result.returncode == 0, result.stderr
    stored = stored_by_uid(node)
    for path in encoded:
        sop_instance_uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        kept = stored[sop_instance_uid]
        assert pydicom.dcmread(kept).file_meta.TransferSyntaxUID == transfer_syntax
        assert comparable(dataset_bytes(kept), transfer_syntax) == comparable(
            dataset_bytes(path), transfer_syntax
        )


def comparable(encoded: bytes, transfer_syntax: str) -> bytes:
    # storescu deflates anew on the wire (and pads to even length): compare what it inflates to.
    if transfer_syntax == "1.2.840.10008.1.2.1.99":
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(encoded)
    return encoded


def test_vendor_jpeg2000_ct_is_stored_as_received(node: NodeProcess, tmp_path: Path) -> None:
    # The real JPEG 2000 CT with its empty UIDs filled in by the test (dcmtk cannot send it
    # otherwise); the pixel data stays the vendor's compressed bytes.
    files = []
    for number, path in enumerate(sorted(shared_data(*CT_EMPTY_UIDS).glob("*.dcm"))[:5]):
        dataset = pydicom.dcmread(path)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = "1.2.826.0.1.1", "1.2.826.0.1.1.1"
        dataset.PatientID = f"P{number}"
        target = tmp_path / path.name
        dataset.save_as(target)
        files.append(target)
    result = storescu(node.dimse_port, files, "-xv")
    assert result.returncode == 0, result.stderr
    stored = stored_by_uid(node)
    for path in files:
        kept = stored[pydicom.dcmread(path).SOPInstanceUID]
        assert pydicom.dcmread(kept).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
        assert dataset_bytes(kept) == dataset_bytes(path)
    assert series(node, "1.2.826.0.1.1.1")["instance_count"] == 5


@pytest.mark.parametrize(
    "parts",
    [
        ("ct", "pydicom_data_enhanced_ct"),
        ("mr", "pydicom_data_enhanced_mr"),
        ("seg_sr", "dcmqi_ct3slice_liver", "image"),
        ("seg_sr", "dcmqi_ct3slice_liver", "seg"),
        ("seg_sr", "highdicom_ct2"),
    ],
    ids=["enhanced-ct", "enhanced-mr", "dcmqi-ct-implicit", "dcmqi-seg", "highdicom-seg-sr"],
)
def test_real_objects_are_stored(node: NodeProcess, tmp_path: Path, parts: tuple[str, ...]) -> None:
    # dcmtk re-encodes some datasets on the wire (sequence lengths, VR); the bit-preserving
    # storescp shows what was sent, and the node must have kept exactly that.
    files = sorted(p for p in shared_data(*parts).rglob("*") if p.is_file() and p.suffix != ".md")
    reference = ReferenceStoreSCP(tmp_path / "reference")
    try:
        sent = storescu(reference.port, files, "-R", "-xv")
        assert sent.returncode == 0, sent.stderr
        expected = reference.by_sop_instance_uid()
    finally:
        reference.stop()
    result = storescu(node.dimse_port, files, "-R", "-xv")
    assert result.returncode == 0, result.stderr
    stored = stored_by_uid(node)
    assert sorted(stored) == sorted(expected)
    for sop_instance_uid, path in expected.items():
        assert dataset_bytes(stored[sop_instance_uid]) == dataset_bytes(path)


def test_empty_uids_are_repaired_deterministically(node: NodeProcess) -> None:
    files = sorted(shared_data(*CT_EMPTY_UIDS).glob("*.dcm"))
    results = send_raw(node.dimse_port, files)
    assert {status for status, _ in results} == {COERCION}
    assert "SOPInstance" in results[0][1]
    stored = stored_files(node)
    assert len(stored) == len(files)
    series_uids = {path.parent.name for path in stored}
    assert len(series_uids) == 1
    assert series(node, series_uids.pop())["instance_count"] == len(files)
    for path in files:
        original = pydicom.dcmread(path)
        kept = pydicom.dcmread(stored_by_uid(node)[original.file_meta.MediaStorageSOPInstanceUID])
        assert kept.SOPInstanceUID == original.file_meta.MediaStorageSOPInstanceUID
        assert kept.SOPClassUID == original.file_meta.MediaStorageSOPClassUID
        assert kept.PixelData == original.PixelData
        (record,) = kept.OriginalAttributesSequence
        assert record.ReasonForTheAttributeModification == "COERCE"
        assert record.ModifiedAttributesSequence[0].SOPInstanceUID == ""


def test_repaired_series_is_idempotent_on_resend(node: NodeProcess) -> None:
    files = sorted(shared_data(*CT_EMPTY_UIDS).glob("*.dcm"))[:4]
    send_raw(node.dimse_port, files)
    before = {path: path.read_bytes() for path in stored_files(node)}
    assert {status for status, _ in send_raw(node.dimse_port, files)} == {COERCION}
    assert {path: path.read_bytes() for path in stored_files(node)} == before
    assert not (node.storage / "superseded").exists()


def test_empty_uids_are_refused_under_policy_refuse(start_node: NodeFactory) -> None:
    node = start_node({"storage": {"missing_uids": "refuse"}})
    files = sorted(shared_data(*CT_EMPTY_UIDS).glob("*.dcm"))[:3]
    results = send_raw(node.dimse_port, files)
    assert [status for status, _ in results] == [CANNOT_UNDERSTAND] * 3
    # ErrorComment is an LO: 64 characters at most.
    assert (
        results[0][1] == "missing SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInsta"[:64]
    )
    assert stored_files(node) == []


def _modified_copy(source: Path, target: Path) -> Path:
    dataset = pydicom.dcmread(source)
    dataset.ImageComments = "re-sent with other content"
    dataset.save_as(target)
    return target


def test_identical_resend_succeeds_and_writes_nothing(node: NodeProcess) -> None:
    files = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[:2]
    assert storescu(node.dimse_port, files).returncode == 0
    stat_before = {path: path.stat().st_mtime_ns for path in stored_files(node)}
    result = storescu(node.dimse_port, files)
    assert result.returncode == 0, result.stderr
    assert {path: path.stat().st_mtime_ns for path in stored_files(node)} == stat_before


def test_changed_resend_replaces_and_keeps_the_old_version(
    node: NodeProcess, tmp_path: Path
) -> None:
    original = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[0]
    assert storescu(node.dimse_port, [original]).returncode == 0
    changed = _modified_copy(original, tmp_path / "changed.dcm")
    result = storescu(node.dimse_port, [changed])
    assert result.returncode == 0, result.stderr
    (current,) = stored_files(node)
    assert dataset_bytes(current) == dataset_bytes(changed)
    (kept,) = (node.storage / "superseded").rglob("*.dcm")
    assert dataset_bytes(kept) == dataset_bytes(original)


def test_changed_resend_is_rejected_under_policy_reject(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = start_node({"storage": {"on_duplicate": "reject"}})
    original = sorted(shared_data(*MR_SERIES).glob("*.dcm"))[0]
    assert storescu(node.dimse_port, [original]).returncode == 0
    changed = shutil.copy(original, tmp_path / "copy.dcm")
    changed = _modified_copy(Path(changed), tmp_path / "changed.dcm")
    results = send_raw(node.dimse_port, [changed])
    assert results[0][0] == DUPLICATE_SOP_INSTANCE
    assert "different content" in results[0][1]
    (current,) = stored_files(node)
    assert dataset_bytes(current) == dataset_bytes(original)
