"""Bad input gets a named failure status, nothing is written half, and the node keeps serving."""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import pydicom
import pytest

from tests.support.dicom import dataset_bytes, dcmtk, send_raw, storescu
from tests.support.node import NodeProcess
from tests.support.peers import shared_data

SUCCESS = 0x0000
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH_SOP_CLASS = 0xA900


def mr_files() -> list[Path]:
    return sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm"))


def save_invalid(dataset: pydicom.Dataset, path: Path) -> Path:
    """Write a deliberately invalid dataset (pydicom warns about the invalid UID)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset.save_as(path)
    return path


def with_dataset(source: Path, target: Path, dataset: bytes) -> Path:
    """`source`'s preamble and file meta followed by the given (corrupt) dataset bytes."""
    data = source.read_bytes()
    meta_end = len(data) - len(dataset_bytes(source))
    target.write_bytes(data[:meta_end] + dataset)
    return target


def assert_nothing_half_written(node: NodeProcess, expected: set[str]) -> None:
    stored = {path.stem for path in (node.storage / "studies").rglob("*.dcm")}
    assert stored == expected
    assert list((node.storage / ".incoming").iterdir()) == []


def first_element_with_length(encoded: bytes) -> int:
    """Offset of the 2-byte length of the first explicit-VR element with a short length."""
    offset = 0
    while offset < len(encoded):
        vr = encoded[offset + 4 : offset + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            offset += 12 + struct.unpack("<I", encoded[offset + 8 : offset + 12])[0]
            continue
        if vr == b"DA":
            return offset + 6
        offset += 8 + struct.unpack("<H", encoded[offset + 6 : offset + 8])[0]
    raise AssertionError("no DA element")


UNDECODABLE = re.compile(r"truncated|out of order|does not decode|after the last element")


@pytest.mark.parametrize("corruption", ["truncated", "wrong-length", "garbage", "short-tail"])
def test_corrupt_dataset_is_refused_and_the_association_goes_on(
    node: NodeProcess, tmp_path: Path, corruption: str
) -> None:
    bad_source, good = mr_files()[:2]
    encoded = dataset_bytes(bad_source)
    if corruption == "truncated":
        corrupt = encoded[:-1000]
    elif corruption == "wrong-length":
        at = first_element_with_length(encoded)
        corrupt = encoded[:at] + struct.pack("<H", 31) + encoded[at + 2 :]
    elif corruption == "garbage":
        corrupt = bytes(range(256)) * 8
    else:
        corrupt = encoded + b"\x08\x00"
    bad = with_dataset(bad_source, tmp_path / "bad.dcm", corrupt)
    results = send_raw(node.dimse_port, [bad, good])
    assert results[0][0] == CANNOT_UNDERSTAND
    assert UNDECODABLE.search(results[0][1]), results[0][1]
    assert results[1] == (SUCCESS, "")
    good_uid = pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID
    assert_nothing_half_written(node, {good_uid})


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_uid_with_path_traversal_is_refused(
    node: NodeProcess, tmp_path: Path, keyword: str
) -> None:
    dataset = pydicom.dcmread(mr_files()[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        setattr(dataset, keyword, "1.2.3/../../../../evil")
        if keyword == "SOPInstanceUID":
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    path = save_invalid(dataset, tmp_path / "evil.dcm")
    result = storescu(node.dimse_port, [path])
    assert "Store Response (Error: CannotUnderstand)" in result.stderr or (
        "0xc000" in result.stderr.lower()
    ), result.stderr
    assert_nothing_half_written(node, set())
    # The traversal would have landed inside tmp_path (node workdir's parent) or the storage.
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*evil*")] == [Path("evil.dcm")]
    assert dcmtk("echoscu", "127.0.0.1", str(node.dimse_port)).returncode == 0


def test_non_uid_characters_are_refused(node: NodeProcess, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(mr_files()[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset.SeriesInstanceUID = "1.2.abc"
    path = save_invalid(dataset, tmp_path / "letters.dcm")
    results = send_raw(node.dimse_port, [path])
    assert results == [(CANNOT_UNDERSTAND, "SeriesInstanceUID is not a valid UID")]
    assert_nothing_half_written(node, set())


def test_sop_class_other_than_requested_is_refused(node: NodeProcess, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(mr_files()[0])
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT, sent as MR
    path = tmp_path / "mismatch.dcm"
    dataset.save_as(path)
    results = send_raw(node.dimse_port, [path])
    assert results[0][0] == DOES_NOT_MATCH_SOP_CLASS
    assert "differs from the request" in results[0][1]
    assert_nothing_half_written(node, set())
