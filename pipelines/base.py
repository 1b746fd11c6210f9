"""The pipeline interface: an image volume and series facts in, a PipelineResult out.

A pipeline never touches the network, the index or DICOM files (DESIGN.md); it is a plain object
with a name, a version (part of the job key: a new version re-runs series) and `run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from pipelines.cine import CineVolume
from pipelines.codes import MILLILITER, VOLUME
from pipelines.result import CineResult, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

__all__ = ["CinePipeline", "Pipeline", "PipelineError", "SeriesFacts", "segment_volumes"]


class PipelineError(Exception):
    """The pipeline cannot produce a result for this input (a permanent failure, not retried)."""


@dataclass(frozen=True)
class SeriesFacts:
    """Series attributes a pipeline may use (DICOM keyword -> value as text)."""

    modality: str = ""
    body_part_examined: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


class Pipeline(Protocol):
    name: str

    @property
    def version(self) -> str:
        """Part of the job key: a new version (or a new installed model) re-runs series."""
        ...

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult: ...


class CinePipeline(Protocol):
    """A pipeline over a cine (slices x phases): the node assembles the series with
    `dicom_node.series.cine` for a pipeline whose `input_kind` is "cine"."""

    name: str
    input_kind: Literal["cine"]

    @property
    def version(self) -> str: ...

    def run_cine(self, cine: CineVolume, facts: SeriesFacts) -> CineResult: ...


def segment_volumes(
    label_map: np.ndarray, volume: ImageVolume, segments: tuple[Segment, ...]
) -> tuple[Measurement, ...]:
    """One volume measurement (ml) per non-empty segment, from voxel counts."""
    counts = np.bincount(label_map.ravel(), minlength=max(s.label for s in segments) + 1)
    voxel_ml = volume.voxel_volume_mm3 / 1000.0
    return tuple(
        Measurement(VOLUME, float(counts[s.label]) * voxel_ml, MILLILITER, s.label)
        for s in segments
        if counts[s.label] > 0
    )
