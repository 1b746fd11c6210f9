"""What a pipeline returns: a label map on the input grid, its segment table, measurements.

Codes are plain (value, scheme, meaning) triples; the writer turns them into DICOM code
sequences (PS3.3 8.8). Curated codes for segments live in `pipelines.codes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "CineResult",
    "Code",
    "Curve",
    "Evaluation",
    "Measurement",
    "PipelineResult",
    "Segment",
]


@dataclass(frozen=True)
class Code:
    """A coded concept: SNOMED CT is ``SCT``, DICOM is ``DCM``, units are ``UCUM``."""

    value: str
    scheme_designator: str
    meaning: str


@dataclass(frozen=True)
class Segment:
    """One row of the segment table (PS3.3 C.8.20.4 Segment Description)."""

    label: int  # the value of this segment in the label map, 1..n
    name: str  # stable machine name, e.g. "lung_left"
    description: str  # shown to the reader (SegmentLabel), e.g. "Left lung"
    category: Code  # SegmentedPropertyCategoryCodeSequence (CID 7150)
    type: Code  # SegmentedPropertyTypeCodeSequence (CID 7151 and friends)
    color: tuple[int, int, int]  # recommended display colour, sRGB 0-255
    anatomic_region: Code | None = None  # AnatomicRegionSequence, e.g. Liver for a liver tumor
    # SegmentedPropertyTypeModifierCodeSequence (CID 244 Laterality: SCT Left/Right) for a
    # paired structure coded with its non-lateral type (Kidney + Right), as CID 7151 does.
    laterality: Code | None = None


@dataclass(frozen=True)
class Measurement:
    """One numeric result (TID 300 in a TID 1500 report), optionally about one segment."""

    name: Code  # concept name, e.g. SCT 118565006 "Volume"
    value: float
    unit: Code  # UCUM, e.g. ("ml", "UCUM", "milliliter")
    segment_label: int | None = None  # the segment it measures, if any
    # TID 300 Derivation (CID 3488), e.g. SCT 56851009 "Maximum" for the largest of several.
    derivation: Code | None = None


@dataclass(frozen=True)
class Evaluation:
    """One coded finding about the result (a TID 1500 qualitative evaluation: CODE content
    item), about one segment or, with no segment, about the whole report."""

    name: Code  # concept name, e.g. DCM 121075 "Recommendation"
    value: Code  # coded value
    segment_label: int | None = None  # the segment it is about, if any


@dataclass(frozen=True, eq=False)
class PipelineResult:
    label_map: npt.NDArray[np.integer]  # same shape and grid as the input volume; 0 = background
    segments: tuple[Segment, ...]
    measurements: tuple[Measurement, ...] = ()
    evaluations: tuple[Evaluation, ...] = ()
    # Human-readable facts about the run worth keeping with the result (e.g. "no airway found").
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        labels = [segment.label for segment in self.segments]
        if len(set(labels)) != len(labels):
            raise ValueError("segment labels must be unique")
        if any(label < 1 for label in labels):
            raise ValueError("segment labels start at 1 (0 is background)")
        present = set(np.unique(self.label_map).tolist()) - {0}
        unknown = present - set(labels)
        if unknown:
            raise ValueError(f"label map holds values without a segment: {sorted(unknown)}")
        for evaluation in self.evaluations:
            if evaluation.segment_label is not None and evaluation.segment_label not in labels:
                raise ValueError(
                    f"evaluation {evaluation.name.meaning!r} refers to segment label "
                    f"{evaluation.segment_label}, which is not in the segment table"
                )

    def segment(self, label: int) -> Segment:
        for segment in self.segments:
            if segment.label == label:
                return segment
        raise KeyError(label)


@dataclass(frozen=True)
class Curve:
    """A measured quantity over time (the LV volume over the cardiac cycle), for a figure."""

    name: str  # e.g. "LV blood pool volume"
    x_label: str  # e.g. "time after R wave (ms)"
    y_label: str  # e.g. "ml"
    x: tuple[float, ...]
    y: tuple[float, ...]
    markers: Mapping[str, int] = field(default_factory=dict)  # e.g. {"ED": 0, "ES": 7}

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} x values for {len(self.y)} y values")


@dataclass(frozen=True, eq=False)
class CineResult:
    """What a cine pipeline gives: a PipelineResult whose label map is the label maps of
    `phases` stacked (phase after phase, each the cine's slices), and curves over time."""

    result: PipelineResult
    phases: tuple[int, ...]
    curves: tuple[Curve, ...] = ()
