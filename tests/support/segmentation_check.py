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
from tests.support.results import dice, jobs

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
                self.ordered_sources, segment_numbers=[number], combine_segments=True
            ).astype(bool)
        return masks

    def report(self) -> Dataset:
        return pydicom.dcmread(self.sr_path)


def process_volume(
    node: NodeProcess, volume: ImageVolume, folder: Path, *, timeout_s: float = 300
) -> NodeResult:
    """Send `volume` as a CT series (dcmtk storescu), mark it ready, wait for its one job to
    succeed, and find the SEG and SR the node stored for it."""
    files = write_series(folder, volume)
    sent = storescu(node.dimse_port, files)
    assert sent.returncode == 0, sent.stderr
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    series_uid = str(headers[0].SeriesInstanceUID)
    response = httpx.post(f"{node.http_url}/api/series/{series_uid}/ready", timeout=10)
    assert response.status_code in (200, 202), response.text
    job = wait_succeeded(node, series_uid, timeout_s=timeout_s)
    by_uid = {path.stem: path for path in _stored_files(node)}
    seg_uid, sr_uid = _result_uids(node, job)
    return NodeResult(
        series_uid,
        [str(header.SOPInstanceUID) for header in headers],  # written slice 0 first
        by_uid[seg_uid],
        by_uid[sr_uid],
        job,
    )


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


def _items(sequence: Any) -> Iterator[Dataset]:
    yield from sequence or []


def _walk(items: Any) -> Iterator[Dataset]:
    for item in _items(items):
        yield item
        yield from _walk(item.get("ContentSequence"))


def segment_codes(report: Dataset) -> dict[int, set[tuple[str, str]]]:
    """Segment number -> (concept name, coded value) of every CODE item in its measurement group
    of a TID 1500 report (qualitative evaluations, finding site, ...)."""
    found: dict[int, set[tuple[str, str]]] = {}
    for group in _walk(report.ContentSequence):
        if group.get("ValueType") != "CONTAINER":
            continue
        segment = None
        codes = set()
        for item in _items(group.get("ContentSequence")):
            if item.get("ValueType") == "IMAGE":
                for ref in _items(item.get("ReferencedSOPSequence")):
                    if "ReferencedSegmentNumber" in ref:
                        segment = int(ref.ReferencedSegmentNumber)
            if item.get("ValueType") == "CODE":
                codes.add(
                    (
                        str(item.ConceptNameCodeSequence[0].CodeValue),
                        str(item.ConceptCodeSequence[0].CodeValue),
                    )
                )
        if segment is not None:
            found.setdefault(segment, set()).update(codes)
    return found


def segment_numbers(seg_path: Path) -> dict[str, int]:
    """SegmentLabel -> SegmentNumber of a SEG file."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    return {str(d.SegmentLabel): int(d.SegmentNumber) for d in seg.SegmentSequence}


def numeric_values(report: Dataset) -> list[tuple[int | None, str, float, str]]:
    """(segment number or None, concept code value, value, unit code) of every NUM item."""
    values = []
    for group in _walk(report.ContentSequence):
        if group.get("ValueType") != "CONTAINER":
            continue
        segment = None
        numbers = []
        for item in _items(group.get("ContentSequence")):
            if item.get("ValueType") == "IMAGE":
                for ref in _items(item.get("ReferencedSOPSequence")):
                    if "ReferencedSegmentNumber" in ref:
                        segment = int(ref.ReferencedSegmentNumber)
            if item.get("ValueType") == "NUM":
                measured = item.MeasuredValueSequence[0]
                numbers.append(
                    (
                        str(item.ConceptNameCodeSequence[0].CodeValue),
                        float(measured.NumericValue),
                        str(measured.MeasurementUnitsCodeSequence[0].CodeValue),
                    )
                )
        values.extend((segment, code, value, unit) for code, value, unit in numbers)
    return values
