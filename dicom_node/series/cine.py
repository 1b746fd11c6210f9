"""Cine assembly: the frames of a cardiac cine series become slices x phases, or a named refusal.

A short-axis cine holds, at each slice location, one frame per cardiac phase: single-frame MR
instances (each with its Trigger Time, MR Image module PS3.3 C.8.3.1) or Enhanced MR multi-frame
instances (per frame: Nominal Cardiac Trigger Delay Time in the Cardiac Synchronization
Sequence, Temporal Position Index in the Frame Content Sequence, PS3.3 C.7.6.16.2). Rules:

1. Frames are grouped by slice location: their position projected on the slice normal (row
   cosine x column cosine), frames within 0.01 mm being one location. Geometry is trusted
   over In-Stack Position Number, which only numbers the frames.
2. At each location the frames are put in phase order by Temporal Position Index where every
   frame has one (Enhanced MR), else by Trigger Time (single-frame MR, or the Enhanced MR
   trigger delay); a series with neither cannot be ordered and is refused
   (``cine_unordered``), as is a location with two frames of one phase
   (``cine_duplicate_phase``).
3. Every location must have the same number of phases (``cine_missing_phase`` names the
   location and the counts: a phase missing at one slice).
4. Phase k is the k-th frame of every location; its frames must form one regular stack
   (`geometry.stack_planes`: the usual checks, a missing slice location included), the same
   stack for every phase.

The result is one ImageVolume per phase on one grid, the source frame of every voxel slice,
and the phase's trigger time (the mean over its slices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.errors import VolumeAssemblyError
from dicom_node.series.assembly import SourceFrame, decode_frames, read_instances
from dicom_node.series.geometry import AssemblyRejection, stack_planes
from dicom_node.series.pixels import (
    available_cpus,
)
from pipelines.cine import CineVolume
from pipelines.volume import ImageVolume

__all__ = ["AssembledCine", "FrameTiming", "assemble_cine", "frame_timing"]

logger = logging.getLogger(__name__)

_SAME_LOCATION_MM = 0.01


@dataclass(frozen=True)
class FrameTiming:
    """When in the cardiac cycle a frame was acquired, as its header says."""

    trigger_time_ms: float | None
    temporal_index: int | None


@dataclass(frozen=True, eq=False)
class AssembledCine:
    cine: CineVolume
    frames: tuple[tuple[SourceFrame, ...], ...]  # frames[phase][slice]
    headers: Mapping[str, Dataset]  # SOP Instance UID -> header without pixel data


def frame_timing(header: Dataset, frame_number: int | None) -> FrameTiming:
    """Trigger time and temporal index of a frame: the top level of a single-frame instance;
    the frame's functional groups (else the shared ones) of a multi-frame instance."""
    if frame_number is None:
        return FrameTiming(
            _number(header, "TriggerTime"), _index(header, "TemporalPositionIdentifier")
        )
    groups = []
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) >= frame_number:
        groups.append(per_frame[frame_number - 1])
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    trigger = index = None
    for group in groups:
        for item in group.get("CardiacSynchronizationSequence") or []:
            trigger = (
                trigger if trigger is not None else _number(item, "NominalCardiacTriggerDelayTime")
            )
        for item in group.get("FrameContentSequence") or []:
            index = index if index is not None else _index(item, "TemporalPositionIndex")
    if trigger is None:
        trigger = _number(header, "TriggerTime")
    return FrameTiming(trigger, index)


def _number(item: Dataset, keyword: str) -> float | None:
    value = item.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _index(item: Dataset, keyword: str) -> int | None:
    value = _number(item, keyword)
    return None if value is None else int(value)


def assemble_cine(paths: Sequence[Path], *, decode_workers: int | None = None) -> AssembledCine:
    """Read, check and order the frames of one cine series into slices x phases (see the
    module's rules); raises VolumeAssemblyError with an AssemblyRejection reason."""
    workers = available_cpus() if decode_workers is None else decode_workers
    if workers < 1:
        raise ValueError(f"decode_workers must be at least 1 (got {decode_workers})")
    instances = read_instances([Path(path) for path in paths])
    frames = [frame for instance in instances for frame in instance.frames]
    headers = {instance.source_uid: instance.header for instance in instances}
    timings = [
        frame_timing(headers[f.source.sop_instance_uid], f.source.frame_number) for f in frames
    ]

    row = np.asarray(frames[0].plane.orientation[:3], dtype=float)
    column = np.asarray(frames[0].plane.orientation[3:], dtype=float)
    normal = np.cross(row, column)
    heights = np.array([np.asarray(f.plane.position) @ normal for f in frames])
    order = np.argsort(heights, kind="stable")
    locations: list[list[int]] = []
    for index in order:
        if locations and heights[index] - heights[locations[-1][0]] <= _SAME_LOCATION_MM:
            locations[-1].append(int(index))
        else:
            locations.append([int(index)])

    by_index = all(timing.temporal_index is not None for timing in timings)
    by_time = all(timing.trigger_time_ms is not None for timing in timings)
    if not by_index and not by_time:
        raise VolumeAssemblyError(
            AssemblyRejection.CINE_UNORDERED,
            "frames without Trigger Time or Temporal Position Index: the cardiac phases "
            "cannot be ordered",
        )

    def phase_key(index: int) -> float:
        timing = timings[index]
        value = timing.temporal_index if by_index else timing.trigger_time_ms
        assert value is not None
        return float(value)

    phases_at: list[list[int]] = []
    for members in locations:
        members.sort(key=phase_key)
        keys = [phase_key(index) for index in members]
        if len(set(keys)) != len(keys):
            what = "Temporal Position Index" if by_index else "Trigger Time"
            twice = sorted({key for key in keys if keys.count(key) > 1})
            raise VolumeAssemblyError(
                AssemblyRejection.CINE_DUPLICATE_PHASE,
                f"the slice at {heights[members[0]]:.2f} mm has two frames with {what} "
                f"{twice[0]:g}",
            )
        phases_at.append(members)
    counts = [len(members) for members in phases_at]
    if len(set(counts)) > 1:
        common = max(set(counts), key=counts.count)
        odd = [k for k, count in enumerate(counts) if count != common]
        where = ", ".join(f"{heights[phases_at[k][0]]:.2f} mm has {counts[k]}" for k in odd[:3])
        raise VolumeAssemblyError(
            AssemblyRejection.CINE_MISSING_PHASE,
            f"slice locations differ in their number of phases: {where}, the other "
            f"{len(counts) - len(odd)} have {common} (a phase is missing or extra)",
        )

    phase_count = counts[0]
    slice_count = len(phases_at)
    stacks = []
    for phase in range(phase_count):
        members = [phases_at[k][phase] for k in range(slice_count)]
        geometry = stack_planes(
            [frames[i].plane for i in members],
            single_slice_spacing=frames[members[0]].single_slice_spacing,
        )
        stacks.append((members, geometry))
    reference = stacks[0][1]
    for _, geometry in stacks[1:]:
        if geometry.order != reference.order or not np.allclose(geometry.origin, reference.origin):
            raise VolumeAssemblyError(
                AssemblyRejection.MIXED_ORIENTATION,
                "the phases do not share one stack of slices",
            )

    ordered = [members[k] for members, geometry in stacks for k in geometry.order]
    first = frames[ordered[0]].plane
    array = decode_frames([frames[i] for i in ordered], workers)
    by_phase = array.reshape(phase_count, slice_count, first.rows, first.columns)

    modality = instances[0].modality
    volumes, sources, times = [], [], []
    for phase, (members, geometry) in enumerate(stacks):
        volumes.append(
            ImageVolume(
                by_phase[phase], geometry.origin, geometry.spacing, geometry.direction, modality
            )
        )
        sources.append(tuple(frames[members[k]].source for k in geometry.order))
        trigger = [t for i in members if (t := timings[i].trigger_time_ms) is not None]
        times.append(float(np.mean(trigger)) if len(trigger) == len(members) else None)
    return AssembledCine(
        cine=CineVolume(tuple(volumes), tuple(times)),
        frames=tuple(sources),
        headers=MappingProxyType(headers),
    )
