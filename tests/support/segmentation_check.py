"""Sending a phantom volume through a node and scoring the SEG + SR it writes against the truth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import httpx
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dicom_node.phantom import write_series
from pipelines import ImageVolume
from tests.support.dicom import storescu
from tests.support.node import NodeProcess
from tests.support.results import content_items, dice, group_segment, jobs, walk_content

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass(frozen=True)
class NodeResult:
    series_instance_uid: str
    ordered_sources: list[str]  # source SOP Instance UIDs, slice k of the phantom first
    seg_path: Path
    sr_path: Path
    job: dict[str, Any]

    def masks(self) -> dict[str, np.ndarray]:
        """SegmentLabel -> boolean mask on the phantom's grid."""
        seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(self.seg_path))
        masks = {}
        for description in seg.SegmentSequence:
            number = int(description.SegmentNumber)
            masks[str(description.SegmentLabel)] = seg.get_pixels_by_source_instance(
                self.ordered_sources,
                segment_numbers=[number],
                combine_segments=True,
                # the SEG holds frames only where some segment has a voxel
                assert_missing_frames_are_empty=True,
            ).astype(bool)
        return masks

    def report(self) -> Dataset:
        return pydicom.dcmread(self.sr_path)


def process_volume(
    node: NodeProcess, volume: ImageVolume, folder: Path, *, timeout_s: float = 300
) -> NodeResult:
    """Send `volume` as a CT series (dcmtk storescu), mark it ready, wait for its one job to
    succeed, and find the SEG and SR the node stored for it."""
    return process_files(node, write_series(folder, volume), timeout_s=timeout_s)


def process_files(node: NodeProcess, files: list[Path], *, timeout_s: float = 300) -> NodeResult:
    """Send the files of one series (dcmtk storescu), mark it ready, wait for its one job to
    succeed, and find the SEG and SR the node stored for it."""
    series_uid = send_and_mark_ready(node, files)
    job = wait_succeeded(node, series_uid, timeout_s=timeout_s)
    by_uid = {path.stem: path for path in _stored_files(node)}
    seg_uid, sr_uid = _result_uids(node, job)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    return NodeResult(
        series_uid,
        [str(header.SOPInstanceUID) for header in headers],  # written slice 0 first
        by_uid[seg_uid],
        by_uid[sr_uid],
        job,
    )


def send_and_mark_ready(node: NodeProcess, files: list[Path]) -> str:
    """storescu the files of one series and mark it ready; its Series Instance UID."""
    sent = storescu(node.dimse_port, files)
    assert sent.returncode == 0, sent.stderr
    series_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    response = httpx.post(f"{node.http_url}/api/series/{series_uid}/ready", timeout=10)
    assert response.status_code in (200, 202), response.text
    return series_uid


def wait_succeeded(node: NodeProcess, series_uid: str, *, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = jobs(node, series_uid)
        failed = [job for job in found if job["state"] == "failed"]
        assert not failed, f"{found}\n{node.log()[-4000:]}"
        done = [job for job in found if job["state"] == "succeeded"]
        if done:
            assert len(done) == 1, found
            return done[0]
        assert time.monotonic() < deadline, f"no result in time: {found}\n{node.log()[-4000:]}"
        time.sleep(0.25)


def _stored_files(node: NodeProcess) -> Iterator[Path]:
    yield from (node.storage / "studies").rglob("*.dcm")


def _result_uids(node: NodeProcess, job: dict[str, Any]) -> tuple[str, str]:
    seg_uid = sr_uid = ""
    for path in _stored_files(node):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        if str(header.SOPInstanceUID) not in job["result_instances"]:
            continue
        if header.SOPClassUID == SEG_SOP_CLASS:
            seg_uid = path.stem
        elif header.SOPClassUID == COMPREHENSIVE_3D_SR:
            sr_uid = path.stem
    assert seg_uid, job
    assert sr_uid, job
    return seg_uid, sr_uid


def dice_by_structure(
    result: NodeResult, truth: np.ndarray, labels: dict[str, int], descriptions: dict[str, str]
) -> dict[str, float]:
    """Dice per structure name (truth value `labels[name]`, SEG segment `descriptions[name]`);
    a structure the truth holds but the SEG lacks scores 0."""
    masks = result.masks()
    scores = {}
    for name, value in labels.items():
        expected = truth == value
        if not expected.any():
            continue
        mask = masks.get(descriptions[name])
        scores[name] = 0.0 if mask is None else dice(mask, expected)
    return scores


def segment_codes(report: Dataset) -> dict[int, set[tuple[str, str]]]:
    """Segment number -> (concept name, coded value) of every CODE item in its measurement group
    of a TID 1500 report (qualitative evaluations, finding site, ...)."""
    found: dict[int, set[tuple[str, str]]] = {}
    for group, segment in _segment_groups(report):
        found.setdefault(segment, set()).update(
            (
                str(item.ConceptNameCodeSequence[0].CodeValue),
                str(item.ConceptCodeSequence[0].CodeValue),
            )
            for item in content_items(group.get("ContentSequence"))
            if item.get("ValueType") == "CODE"
        )
    return found


def segment_numbers(seg_path: Path) -> dict[str, int]:
    """SegmentLabel -> SegmentNumber of a SEG file."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return {str(d.SegmentLabel): int(d.SegmentNumber) for d in seg.SegmentSequence}


def numeric_values(report: Dataset) -> list[tuple[int, str, float, str]]:
    """(segment number, concept code value, value, unit code) of every NUM item of the
    measurement groups of a TID 1500 report."""
    values = []
    for group, segment in _segment_groups(report):
        for item in content_items(group.get("ContentSequence")):
            if item.get("ValueType") == "NUM":
                measured = item.MeasuredValueSequence[0]
                values.append(
                    (
                        segment,
                        str(item.ConceptNameCodeSequence[0].CodeValue),
                        float(measured.NumericValue),
                        str(measured.MeasurementUnitsCodeSequence[0].CodeValue),
                    )
                )
    return values


def _segment_groups(report: Dataset) -> Iterator[tuple[Dataset, int]]:
    for group in walk_content(report.ContentSequence):
        if group.get("ValueType") == "CONTAINER":
            segment = group_segment(group)
            if segment is not None:
                yield group, segment
