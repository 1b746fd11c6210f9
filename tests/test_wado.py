"""WADO-RS (PS3.18 10.4) against a real node: instances, metadata, bulk data, frames, rendered."""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from tests.support.dicomweb import split_multipart, stow
from tests.support.node import NodeProcess, base_config
from tests.support.peers import shared_data
from tests.support.phantom import write_ct_series
from tests.support.storage_check import dataset_bytes

EXPLICIT_LE = "1.2.840.10008.1.2.1"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
DICOM_PARTS = 'multipart/related; type="application/dicom"'
OCTET_PARTS = 'multipart/related; type="application/octet-stream"'


@dataclass(frozen=True)
class Stored:
    """A file sent to the node, and where the node says it is (its RetrieveURL)."""

    path: Path
    url: str

    @property
    def dataset(self) -> Dataset:
        return pydicom.dcmread(self.path)


@dataclass(frozen=True)
class Loaded:
    node: NodeProcess
    phantom: list[Stored]
    j2k: list[Stored]
    implicit: list[Stored]
    enhanced_mr: Stored
    seg: Stored
    sr: Stored
    with_bulk: Stored


def _with_bulk_elements(folder: Path) -> Path:
    """A CT slice with a private 4 KiB OB element and an icon image in a sequence."""
    path = write_ct_series(folder, 1, size=32)[0]
    dataset = pydicom.dcmread(path)
    block = dataset.private_block(0x0009, "DICOM-NODE TEST", create=True)
    block.add_new(0x10, "OB", bytes(range(256)) * 16)
    icon = Dataset()
    icon.Rows = icon.Columns = 64
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = bytes(range(64)) * 64
    dataset.IconImageSequence = [icon]
    dataset.save_as(path, enforce_file_format=True)
    return path


def _store(node: NodeProcess, files: list[Path]) -> list[Stored]:
    response = stow(node.http_url, files)
    assert response.status_code in (200, 202), response.text
    items = response.json()["00081199"]["Value"]
    assert len(items) == len(files)
    return [
        Stored(path, item["00081190"]["Value"][0]) for path, item in zip(files, items, strict=True)
    ]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """One node holding every kind of instance the tests read (a node start costs seconds)."""
    workdir = tmp_path_factory.mktemp("wado")
    node = NodeProcess(workdir / "node", base_config(workdir / "node")).start()
    try:
        highdicom = shared_data("seg_sr", "highdicom_ct2")
        yield Loaded(
            node=node,
            phantom=_store(node, write_ct_series(workdir / "phantom", 3, size=128)),
            j2k=_store(
                node,
                sorted(shared_data("ct", "totalseg_example_ct_dicom", "dicom").glob("*.dcm"))[:2],
            ),
            implicit=_store(
                node, sorted(shared_data("seg_sr", "dcmqi_ct3slice_liver", "image").glob("*.dcm"))
            ),
            enhanced_mr=_store(
                node, [shared_data("mr", "pydicom_data_enhanced_mr", "emri_small.dcm")]
            )[0],
            seg=_store(node, [highdicom / "seg_image_ct_binary.dcm"])[0],
            sr=_store(node, [highdicom / "sr_document.dcm"])[0],
            with_bulk=_store(node, [_with_bulk_elements(workdir / "bulk")])[0],
        )
    finally:
        node.terminate()


def _get(url: str, accept: str | None = None, **params: str) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(url, headers=headers, params=params, timeout=60)


def _series_url(stored: Stored) -> str:
    return stored.url.rsplit("/instances/", 1)[0]


def _study_url(stored: Stored) -> str:
    return stored.url.rsplit("/series/", 1)[0]


def _part10_datasets(response: httpx.Response) -> list[bytes]:
    """The parts of a retrieve response, each checked to be an application/dicom PS3.10 file."""
    assert response.status_code == 200, response.text
    parts = split_multipart(response)
    for headers, content in parts:
        assert headers["content-type"].startswith("application/dicom")
        assert pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True).file_meta
    return [content for _, content in parts]


def _dataset_part(content: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / f"{generate_uid()}.dcm"
    path.write_bytes(content)
    return dataset_bytes(path)


def test_instance_is_returned_as_stored(loaded: Loaded, tmp_path: Path) -> None:
    stored = loaded.phantom[0]
    response = _get(stored.url, DICOM_PARTS)
    (content,) = _part10_datasets(response)
    assert split_multipart(response)[0][0]["content-type"] == (
        f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    )
    assert _dataset_part(content, tmp_path) == dataset_bytes(stored.path)


def test_series_returns_every_instance_byte_for_byte(loaded: Loaded, tmp_path: Path) -> None:
    contents = _part10_datasets(_get(_series_url(loaded.phantom[0])))
    assert sorted(_dataset_part(c, tmp_path) for c in contents) == sorted(
        dataset_bytes(s.path) for s in loaded.phantom
    )


def test_study_returns_every_instance_byte_for_byte(loaded: Loaded, tmp_path: Path) -> None:
    contents = _part10_datasets(_get(_study_url(loaded.phantom[0]), "*/*"))
    assert sorted(_dataset_part(c, tmp_path) for c in contents) == sorted(
        dataset_bytes(s.path) for s in loaded.phantom
    )


def test_implicit_vr_instance_is_labelled_with_its_stored_syntax(
    loaded: Loaded, tmp_path: Path
) -> None:
    stored = loaded.implicit[0]
    response = _get(stored.url, f"{DICOM_PARTS}; transfer-syntax=*")
    ((headers, content),) = split_multipart(response)
    assert headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2"
    assert _dataset_part(content, tmp_path) == dataset_bytes(stored.path)


def test_single_instance_as_bare_application_dicom(loaded: Loaded, tmp_path: Path) -> None:
    stored = loaded.phantom[1]
    response = _get(stored.url, "application/dicom")
    assert response.headers["content-type"].startswith("application/dicom")
    assert _dataset_part(response.content, tmp_path) == dataset_bytes(stored.path)


def test_j2k_instance_converted_to_explicit_vr_little_endian(loaded: Loaded) -> None:
    stored = loaded.j2k[0]
    response = _get(stored.url, f"{DICOM_PARTS}; transfer-syntax={EXPLICIT_LE}")
    ((headers, content),) = split_multipart(response)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    converted = pydicom.dcmread(io.BytesIO(content))
    assert converted.file_meta.TransferSyntaxUID == EXPLICIT_LE
    np.testing.assert_array_equal(converted.pixel_array, stored.dataset.pixel_array)


def test_unavailable_transfer_syntax_is_406(loaded: Loaded) -> None:
    response = _get(loaded.phantom[0].url, f"{DICOM_PARTS}; transfer-syntax=1.2.840.10008.1.2.4.50")
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"


def test_metadata_points_pixel_data_to_bulk_data_with_its_bytes(loaded: Loaded) -> None:
    stored = loaded.phantom[0]
    response = _get(stored.url + "/metadata", "application/dicom+json")
    assert response.headers["content-type"] == "application/dicom+json"
    (metadata,) = response.json()
    assert metadata["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "PHANTOM^CT"}]}
    assert metadata["00080018"]["Value"] == [str(stored.dataset.SOPInstanceUID)]
    pixel_data = metadata["7FE00010"]
    assert pixel_data["vr"] == "OW"
    bulk = _get(pixel_data["BulkDataURI"], OCTET_PARTS)
    ((_, content),) = split_multipart(bulk)
    assert content == stored.dataset.PixelData


def test_large_binary_values_go_out_by_bulk_data_uri(loaded: Loaded) -> None:
    stored = loaded.with_bulk
    (metadata,) = _get(stored.url + "/metadata").json()
    private = metadata["00091010"]
    assert set(private) == {"vr", "BulkDataURI"}
    content = _get(private["BulkDataURI"], "application/octet-stream").content
    assert content == bytes(range(256)) * 16


def test_bulk_data_inside_a_sequence_has_its_own_uri(loaded: Loaded) -> None:
    stored = loaded.with_bulk
    (metadata,) = _get(stored.url + "/metadata").json()
    icon_pixels = metadata["00880200"]["Value"][0]["7FE00010"]
    assert icon_pixels["BulkDataURI"].endswith("/bulkdata/00880200/0/7FE00010")
    ((_, content),) = split_multipart(_get(icon_pixels["BulkDataURI"]))
    assert content == bytes(range(64)) * 64


def test_series_metadata_has_one_object_per_instance(loaded: Loaded) -> None:
    metadata = _get(_series_url(loaded.phantom[0]) + "/metadata").json()
    assert sorted(item["00080018"]["Value"][0] for item in metadata) == sorted(
        str(s.dataset.SOPInstanceUID) for s in loaded.phantom
    )


def test_metadata_in_xml_is_not_acceptable(loaded: Loaded) -> None:
    response = _get(
        loaded.phantom[0].url + "/metadata", "multipart/related; type=application/dicom+xml"
    )
    assert response.status_code == 406


def test_j2k_frame_as_stored_is_the_compressed_bitstream(loaded: Loaded) -> None:
    stored = loaded.j2k[0]
    response = _get(stored.url + "/frames/1", f"{OCTET_PARTS}; transfer-syntax=*")
    ((headers, content),) = split_multipart(response)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={J2K_LOSSLESS}"
    original = stored.dataset
    (expected,) = generate_frames(original.PixelData, number_of_frames=1)
    assert content == expected


def test_j2k_frame_as_image_jp2(loaded: Loaded) -> None:
    stored = loaded.j2k[1]
    response = _get(stored.url + "/frames/1", 'multipart/related; type="image/jp2"')
    ((headers, content),) = split_multipart(response)
    assert headers["content-type"] == f"image/jp2; transfer-syntax={J2K_LOSSLESS}"
    assert content[:4] == b"\xff\x4f\xff\x51"  # J2K codestream: SOC, SIZ


@pytest.mark.parametrize("accept", [OCTET_PARTS, f"{OCTET_PARTS}; transfer-syntax={EXPLICIT_LE}"])
def test_j2k_frame_decoded_to_native_pixels(loaded: Loaded, accept: str) -> None:
    stored = loaded.j2k[0]
    response = _get(stored.url + "/frames/1", accept)
    ((headers, content),) = split_multipart(response)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert content == stored.dataset.pixel_array.astype("<i2").tobytes()


def test_j2k_frame_in_another_compressed_syntax_is_406(loaded: Loaded) -> None:
    response = _get(loaded.j2k[0].url + "/frames/1", 'multipart/related; type="image/jpeg"')
    assert response.status_code == 406


def test_multi_frame_frames_in_the_order_asked(loaded: Loaded) -> None:
    stored = loaded.enhanced_mr
    response = _get(stored.url + "/frames/5,2", f"{OCTET_PARTS}; transfer-syntax=*")
    pixels = stored.dataset.pixel_array
    assert [content for _, content in split_multipart(response)] == [
        pixels[4].astype("<u2").tobytes(),
        pixels[1].astype("<u2").tobytes(),
    ]


def test_single_bit_segmentation_frame_is_repacked_from_bit_zero(loaded: Loaded) -> None:
    stored = loaded.seg
    response = _get(stored.url + "/frames/2", f"{OCTET_PARTS}; transfer-syntax=*")
    ((_, content),) = split_multipart(response)
    expected = np.packbits(stored.dataset.pixel_array[1].ravel(), bitorder="little").tobytes()
    assert content == expected


@pytest.mark.parametrize(("frames", "status"), [("11", 404), ("0", 400), ("1,x", 400)])
def test_bad_frame_numbers(loaded: Loaded, frames: str, status: int) -> None:
    response = _get(f"{loaded.enhanced_mr.url}/frames/{frames}", OCTET_PARTS)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_frames_of_an_instance_without_pixels_is_404(loaded: Loaded) -> None:
    assert _get(loaded.sr.url + "/frames/1", OCTET_PARTS).status_code == 404


@pytest.mark.parametrize(
    ("accept", "kind"), [("image/png", "PNG"), ("image/jpeg", "JPEG"), ("*/*", "JPEG")]
)
def test_rendered_instance_is_an_image_of_its_size(loaded: Loaded, accept: str, kind: str) -> None:
    response = _get(loaded.phantom[0].url + "/rendered", accept)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == (kind, (128, 128))


def test_rendered_frame_of_j2k_with_window_and_viewport(loaded: Loaded) -> None:
    response = _get(
        loaded.j2k[0].url + "/frames/1/rendered", "image/png", window="40,400", viewport="256,256"
    )
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size, image.mode) == ("PNG", (256, 256), "L")
    assert len(np.unique(np.asarray(image))) > 10  # a windowed CT, not a blank square


def test_rendered_with_a_bad_window_is_400(loaded: Loaded) -> None:
    response = _get(loaded.phantom[0].url + "/rendered", "image/png", window="40")
    assert response.status_code == 400


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_thumbnail_fits_128(loaded: Loaded, level: str) -> None:
    stored = loaded.j2k[0]
    url = {"study": _study_url(stored), "series": _series_url(stored), "instance": stored.url}
    response = _get(url[level] + "/thumbnail", "image/jpeg")
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == ("JPEG", (128, 128))


def test_rendered_of_a_structured_report_is_406(loaded: Loaded) -> None:
    assert _get(loaded.sr.url + "/rendered").status_code == 406


@pytest.mark.parametrize("missing", ["study", "series", "instance"])
def test_unknown_uids_are_404_problems(loaded: Loaded, missing: str) -> None:
    stored = loaded.phantom[0]
    url = {
        "study": _study_url(stored).rsplit("/", 1)[0] + f"/{generate_uid()}",
        "series": _series_url(stored).rsplit("/", 1)[0] + f"/{generate_uid()}",
        "instance": stored.url.rsplit("/", 1)[0] + f"/{generate_uid()}",
    }[missing]
    for resource in ("", "/metadata"):
        response = _get(url + resource)
        assert response.status_code == 404
        assert response.json()["title"] == f"{missing.capitalize()} not found"


@pytest.mark.parametrize(
    "suffix",
    [
        "/../../../../etc/passwd",
        "/..%2F..%2F..%2Fetc%2Fpasswd",
        "/..%2f..%2fmetadata",
        "/1.2.3%2F..%2F/metadata",
        "/1.2.3x/metadata",
    ],
)
def test_traversal_in_a_uid_is_400(loaded: Loaded, suffix: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", loaded.node.http_port, timeout=30)
    connection.request("GET", "/dicomweb/studies" + suffix)  # sent as written, not normalised
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 400, body
    assert response.getheader("content-type") == "application/problem+json"


def test_urls_keep_the_listening_port_when_host_omits_it(loaded: Loaded) -> None:
    stored = loaded.phantom[0]
    response = httpx.get(stored.url + "/metadata", headers={"Host": "127.0.0.1"}, timeout=30)
    uri = response.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(f"http://127.0.0.1:{loaded.node.http_port}/dicomweb/studies/")


def test_urls_follow_the_host_a_reverse_proxy_gives(loaded: Loaded) -> None:
    stored = loaded.phantom[0]
    headers = {"Host": "pacs.example.org", "X-Forwarded-For": "10.1.2.3"}
    response = httpx.get(stored.url + "/metadata", headers=headers, timeout=30)
    uri = response.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith("http://pacs.example.org/dicomweb/studies/")
