"""dicomweb-client (the Python DICOMweb client) against a real node: store, search, retrieve,
metadata, frames, bulk data; what comes back equals what was sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from tests.support.node import NodeProcess, base_config
from tests.support.peers import shared_data
from tests.support.phantom import write_ct_series
from tests.support.storage_check import dataset_bytes, stored_files

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Session:
    node: NodeProcess
    client: DICOMwebClient
    phantom: list[Path]
    enhanced_mr: Path
    j2k: Path  # a JPEG 2000 slice with all its UIDs filled in


def _j2k_with_uids(folder: Path) -> Path:
    """The real JPEG 2000 CT slice with the UIDs its anonymisation emptied put back (a client
    sends a Dataset, so the node's repair of empty UIDs is not what is tested here)."""
    source = sorted(shared_data("ct", "totalseg_example_ct_dicom", "dicom").glob("*.dcm"))[0]
    dataset = pydicom.dcmread(source)
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "j2k.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    workdir = tmp_path_factory.mktemp("client")
    node = NodeProcess(workdir / "node", base_config(workdir / "node")).start()
    try:
        client = DICOMwebClient(url=f"{node.http_url}/dicomweb")
        phantom = write_ct_series(workdir / "phantom", 3, size=128)
        enhanced_mr = shared_data("mr", "pydicom_data_enhanced_mr", "emri_small.dcm")
        j2k = _j2k_with_uids(workdir / "j2k")
        for path in (*phantom, enhanced_mr, j2k):
            client.store_instances([pydicom.dcmread(path)])
        yield Session(node, client, phantom, enhanced_mr, j2k)
    finally:
        node.terminate()


def _uids(path: Path) -> tuple[str, str, str]:
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    return (
        str(dataset.StudyInstanceUID),
        str(dataset.SeriesInstanceUID),
        str(dataset.SOPInstanceUID),
    )


def test_stored_instances_are_byte_identical_on_disk(session: Session) -> None:
    on_disk = {dataset_bytes(path) for path in stored_files(session.node.storage)}
    for path in (*session.phantom, session.enhanced_mr, session.j2k):
        assert dataset_bytes(path) in on_disk, path.name


def test_store_answers_with_referenced_instances(session: Session, tmp_path: Path) -> None:
    extra = write_ct_series(tmp_path / "more", 2, size=32)
    response = session.client.store_instances([pydicom.dcmread(path) for path in extra])
    referenced = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert referenced == {_uids(path)[2] for path in extra}
    assert "FailedSOPSequence" not in response


def test_search_for_studies_finds_the_phantom(session: Session) -> None:
    study, _, _ = _uids(session.phantom[0])
    found = session.client.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert [Dataset.from_json(item).StudyInstanceUID for item in found] == [study]


def test_search_for_series_and_instances(session: Session) -> None:
    study, series, _ = _uids(session.phantom[0])
    found_series = session.client.search_for_series(study_instance_uid=study)
    assert [Dataset.from_json(item).SeriesInstanceUID for item in found_series] == [series]
    instances = session.client.search_for_instances(
        study_instance_uid=study, series_instance_uid=series
    )
    assert {Dataset.from_json(item).SOPInstanceUID for item in instances} == {
        _uids(path)[2] for path in session.phantom
    }


def test_retrieve_instance_equals_the_original(session: Session) -> None:
    path = session.phantom[1]
    retrieved = session.client.retrieve_instance(*_uids(path))
    original = pydicom.dcmread(path)
    assert retrieved == original
    assert retrieved.PixelData == original.PixelData


def test_retrieve_compressed_instance_as_stored(session: Session) -> None:
    retrieved = session.client.retrieve_instance(
        *_uids(session.j2k), media_types=(("application/dicom", J2K_LOSSLESS),)
    )
    assert retrieved.file_meta.TransferSyntaxUID == J2K_LOSSLESS
    assert retrieved.PixelData == pydicom.dcmread(session.j2k).PixelData


def test_retrieve_study_metadata_has_every_instance(session: Session) -> None:
    study, _, _ = _uids(session.phantom[0])
    metadata = session.client.retrieve_study_metadata(study)
    assert {item["00080018"]["Value"][0] for item in metadata} == {
        _uids(path)[2] for path in session.phantom
    }


def test_bulk_data_uri_of_the_metadata_gives_the_pixel_data(session: Session) -> None:
    path = session.phantom[0]
    metadata = session.client.retrieve_instance_metadata(*_uids(path))
    (content,) = session.client.retrieve_bulkdata(metadata["7FE00010"]["BulkDataURI"])
    assert content == pydicom.dcmread(path).PixelData


def test_retrieve_frames_of_a_multi_frame_instance(session: Session) -> None:
    frames = session.client.retrieve_instance_frames(
        *_uids(session.enhanced_mr), frame_numbers=[1, 10]
    )
    pixels = pydicom.dcmread(session.enhanced_mr).pixel_array
    assert frames == [pixels[0].astype("<u2").tobytes(), pixels[9].astype("<u2").tobytes()]


def test_retrieve_frame_without_media_types_gets_the_stored_bitstream(session: Session) -> None:
    (frame,) = session.client.retrieve_instance_frames(*_uids(session.j2k), frame_numbers=[1])
    (expected,) = generate_frames(pydicom.dcmread(session.j2k).PixelData, number_of_frames=1)
    assert frame == expected


def test_retrieve_compressed_frame_as_stored(session: Session) -> None:
    (frame,) = session.client.retrieve_instance_frames(
        *_uids(session.j2k), frame_numbers=[1], media_types=(("image/jp2", J2K_LOSSLESS),)
    )
    (expected,) = generate_frames(pydicom.dcmread(session.j2k).PixelData, number_of_frames=1)
    assert frame == expected


def test_retrieve_compressed_frame_decoded(session: Session) -> None:
    (frame,) = session.client.retrieve_instance_frames(
        *_uids(session.j2k),
        frame_numbers=[1],
        media_types=(("application/octet-stream", EXPLICIT_LE),),
    )
    pixels = pydicom.dcmread(session.j2k).pixel_array
    np.testing.assert_array_equal(np.frombuffer(frame, dtype="<i2").reshape(pixels.shape), pixels)
