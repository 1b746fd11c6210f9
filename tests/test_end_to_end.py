"""End to end: CT sent to the node comes back into a real Orthanc as one SEG and one SR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_node.phantom import make_torso, write_phantom_series
from pipelines.codes import SEGMENT_CODES
from pipelines.ct_basic import LABELS
from tests.conftest import NodeFactory
from tests.support.dicom import send_raw, storescu
from tests.support.node import NodeProcess
from tests.support.orthanc import ORTHANC_AE, OrthancProcess
from tests.support.peers import shared_data
from tests.support.results import (
    dciodvfy_errors,
    dice,
    seg_frame_sources,
    seg_referenced_instances,
    sr_volumes,
    wait_delivered,
)

PHANTOM_SHAPE = (48, 128, 128)
PHANTOM_SPACING = (3.0, 2.5, 2.5)
PHANTOM_SEED = 7
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancProcess]:
    peer = OrthancProcess(tmp_path / "orthanc").start()
    yield peer
    peer.stop()


def routed_node(start_node: NodeFactory, orthanc: OrthancProcess, **extra: Any) -> NodeProcess:
    return start_node(
        {
            "series": {"stable_after_s": 2},
            "destinations": {
                "pacs": {
                    "kind": "dimse",
                    "ae_title": ORTHANC_AE,
                    "host": "127.0.0.1",
                    "port": orthanc.dicom_port,
                    "retry_backoff_s": 0.5,
                }
            },
            "routes": [
                {
                    "name": "all-ct",
                    "match": {"Modality": "CT"},
                    "pipeline": "ct_basic",
                    "send_to": ["pacs"],
                }
            ],
            **extra,
        }
    )


def results_in_orthanc(orthanc: OrthancProcess, folder: Path) -> tuple[Path, Path]:
    """Exactly one SEG and one SR are in Orthanc; their files, downloaded."""
    found = orthanc.instances_by_modality()
    assert len(found.get("SEG", [])) == 1, found
    assert len(found.get("SR", [])) == 1, found
    folder.mkdir(parents=True, exist_ok=True)
    seg_path, sr_path = folder / "seg.dcm", folder / "sr.dcm"
    seg_path.write_bytes(orthanc.file(found["SEG"][0]))
    sr_path.write_bytes(orthanc.file(found["SR"][0]))
    return seg_path, sr_path


def check_documents(seg_path: Path, sr_path: Path, sources: dict[str, pydicom.Dataset]) -> None:
    seg, sr = pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)
    assert seg.SOPClassUID == SEG_SOP_CLASS
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert dciodvfy_errors(seg_path) == []
    assert dciodvfy_errors(sr_path) == []
    first = next(iter(sources.values()))
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == first.StudyInstanceUID
    framed = seg_frame_sources(seg)
    assert framed <= seg_referenced_instances(seg)
    assert framed <= set(sources)
    # SR volumes equal the mask volumes (voxel count x voxel size) within 1 %.
    decoded = hd.seg.Segmentation.from_dataset(seg)
    row_mm, column_mm = (float(v) for v in first.PixelSpacing)
    positions = sorted(
        float(np.dot(ds.ImagePositionPatient, _normal(ds))) for ds in sources.values()
    )
    slice_mm = (positions[-1] - positions[0]) / (len(positions) - 1)
    volumes = sr_volumes(sr)
    assert set(volumes) == set(decoded.segment_numbers)
    for number in decoded.segment_numbers:
        mask = decoded.get_pixels_by_source_instance(
            sorted(framed), segment_numbers=[number], combine_segments=True
        )
        voxels = int(np.count_nonzero(mask))
        expected_ml = voxels * row_mm * column_mm * slice_mm / 1000
        assert volumes[number] == pytest.approx(expected_ml, rel=0.01), number


def _normal(dataset: pydicom.Dataset) -> np.ndarray:
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def test_phantom_comes_back_as_seg_and_sr(
    start_node: NodeFactory, orthanc: OrthancProcess, tmp_path: Path
) -> None:
    node = routed_node(start_node, orthanc)
    files = write_phantom_series(
        tmp_path / "phantom", shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, seed=PHANTOM_SEED
    )
    assert storescu(node.dimse_port, files).returncode == 0
    sources = {
        str(ds.SOPInstanceUID): ds
        for ds in (pydicom.dcmread(path, stop_before_pixels=True) for path in files)
    }
    series_uid = str(next(iter(sources.values())).SeriesInstanceUID)
    wait_delivered(node, series_uid)
    seg_path, sr_path = results_in_orthanc(orthanc, tmp_path / "results")
    check_documents(seg_path, sr_path, sources)

    # Every segment matches the phantom's ground truth (Dice >= 0.95).
    volume, truth = make_torso(shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, seed=PHANTOM_SEED)
    by_position = {
        tuple(np.round(np.asarray(ds.ImagePositionPatient, dtype=float), 2)): uid
        for uid, ds in sources.items()
    }
    ordered = [
        by_position[tuple(np.round(volume.index_to_world((k, 0, 0)), 2))]
        for k in range(PHANTOM_SHAPE[0])
    ]
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(seg_path))
    by_label = {
        description.SegmentLabel: int(description.SegmentNumber)
        for description in seg.SegmentSequence
    }
    scores = {}
    for name, label in LABELS.items():
        segment_number = by_label.get(SEGMENT_CODES[name].description)
        expected = truth == label
        if segment_number is None:
            assert not expected.any(), f"{name} missing from the SEG"
            continue
        mask = seg.get_pixels_by_source_instance(
            ordered, segment_numbers=[segment_number], combine_segments=True
        ).astype(bool)
        scores[name] = dice(mask, expected)
    assert all(score >= 0.95 for score in scores.values()), scores


def test_real_j2k_ct_comes_back_as_seg_and_sr(
    start_node: NodeFactory, orthanc: OrthancProcess, tmp_path: Path
) -> None:
    node = routed_node(start_node, orthanc)
    files = sorted(shared_data("ct", "totalseg_example_ct_dicom", "dicom").glob("*.dcm"))
    # Its SOP/Series/Study UIDs are empty: dcmtk refuses to send it, the node repairs them.
    assert all(status == 0xB000 for status, _ in send_raw(node.dimse_port, files))
    wait_delivered(node)
    seg_path, sr_path = results_in_orthanc(orthanc, tmp_path / "results")
    stored = [
        pydicom.dcmread(path, stop_before_pixels=True)
        for path in (node.storage / "studies").rglob("*.dcm")
    ]
    sources = {str(ds.SOPInstanceUID): ds for ds in stored if ds.Modality == "CT"}
    assert len(sources) == len(files)
    check_documents(seg_path, sr_path, sources)
