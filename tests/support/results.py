"""Checking the node's results as a receiving PACS sees them: jobs, SEG and TID 1500 SR."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset

from tests.support.node import NodeProcess
from tests.support.peers import require_command

VOLUME = "118565006"  # SCT "Volume"
DERIVATION = "121401"  # DCM "Derivation"


def jobs(node: NodeProcess, series_uid: str | None = None) -> list[dict[str, Any]]:
    query = f"?series={series_uid}" if series_uid else ""
    response = httpx.get(f"{node.http_url}/api/jobs{query}", timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def wait_delivered(
    node: NodeProcess, series_uid: str | None = None, *, count: int = 1, timeout_s: float = 180
) -> list[dict[str, Any]]:
    """Wait until `count` jobs succeeded and all their deliveries are sent; fail on a job
    that failed or a dead letter (with the node's log)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = jobs(node, series_uid)
        failed = [job for job in found if job["state"] == "failed"]
        dead = [d for job in found for d in job["deliveries"] if d["state"] == "dead"]
        assert not failed, f"{found}\n{node.log()[-3000:]}"
        assert not dead, f"{found}\n{node.log()[-3000:]}"
        done = [
            job
            for job in found
            if job["state"] == "succeeded"
            and job["deliveries"]
            and all(d["state"] == "sent" for d in job["deliveries"])
        ]
        if len(done) >= count:
            return found
        assert time.monotonic() < deadline, f"not delivered in time: {found}\n{node.log()[-3000:]}"
        time.sleep(0.25)


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dicom3tools' dciodvfy prints for a file (warnings are allowed)."""
    completed = subprocess.run(
        [require_command("dciodvfy"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    return [line for line in output.splitlines() if re.match(r"^\s*Error", line)]


def content_items(sequence: Any) -> Iterator[Dataset]:
    yield from sequence or []


def walk_content(items: Any) -> Iterator[Dataset]:
    """Every content item of an SR tree, depth first."""
    for item in content_items(items):
        yield item
        yield from walk_content(item.get("ContentSequence"))


def group_segment(group: Dataset) -> int | None:
    """The segment number a TID 1500 measurement group refers to (its IMAGE item), if any."""
    for item in content_items(group.get("ContentSequence")):
        if item.get("ValueType") == "IMAGE":
            for ref in content_items(item.get("ReferencedSOPSequence")):
                if "ReferencedSegmentNumber" in ref:
                    return int(ref.ReferencedSegmentNumber)
    return None


def sr_volumes(report: Dataset) -> dict[int, float]:
    """Segment number -> volume (ml) from a TID 1500 report's volumetric ROI groups."""
    volumes: dict[int, float] = {}
    for group in walk_content(report.ContentSequence):
        if group.get("ValueType") != "CONTAINER":
            continue
        segment = group_segment(group)
        volume = None
        for item in content_items(group.get("ContentSequence")):
            if item.get("ValueType") == "NUM":
                name = item.ConceptNameCodeSequence[0].CodeValue
                # A Volume with a Derivation modifier (e.g. the largest of several) is not
                # the segment's own volume.
                derived = any(
                    modifier.ConceptNameCodeSequence[0].CodeValue == DERIVATION
                    for modifier in content_items(item.get("ContentSequence"))
                )
                if name == VOLUME and not derived:
                    value = item.MeasuredValueSequence[0]
                    unit = value.MeasurementUnitsCodeSequence[0].CodeValue
                    scale = {"ml": 1.0, "mL": 1.0, "mm3": 1e-3, "cm3": 1.0}[unit]
                    volume = float(value.NumericValue) * scale
        if segment is not None and volume is not None:
            volumes[segment] = volume
    return volumes


def seg_referenced_instances(seg: Dataset) -> set[str]:
    return {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }


def seg_frame_sources(seg: Dataset) -> set[str]:
    return {
        source.ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for source in derivation.SourceImageSequence
    }


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
