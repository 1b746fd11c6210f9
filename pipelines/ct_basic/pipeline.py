"""The ct_basic pipeline: smooth -> body -> lungs and airway -> bone -> fat -> label map.

One label map, no overlaps. Where masks meet, the priority is airway > lungs > bone > adipose
tissue > body, so "body" is what is left inside the body outline: soft tissue, organs, fluid,
bowel content and gas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.codes import segment_for
from pipelines.ct_basic.body import segment_body
from pipelines.ct_basic.geometry import BoolArray, FloatArray
from pipelines.ct_basic.lungs import segment_lungs_and_airway
from pipelines.ct_basic.options import CtBasicOptions
from pipelines.ct_basic.tissue import segment_adipose_tissue, segment_bone
from pipelines.result import PipelineResult, Segment
from pipelines.volume import ImageVolume

__all__ = ["LABELS", "SEGMENTS", "CtBasicPipeline", "smooth_hu"]

# Label values in the map, in segment-table order.
LABELS: dict[str, int] = {
    "body": 1,
    "lung_left": 2,
    "lung_right": 3,
    "airway": 4,
    "bone": 5,
    "adipose_tissue": 6,
}
SEGMENTS: tuple[Segment, ...] = tuple(segment_for(name, label) for name, label in LABELS.items())


def smooth_hu(volume: ImageVolume, sigma_mm: float) -> FloatArray:
    """The volume as float32 HU, Gaussian-smoothed with `sigma_mm` on every axis (0: a copy)."""
    hu = np.asarray(volume.array, dtype=np.float32)
    if sigma_mm <= 0:
        return hu
    sigma = [sigma_mm / spacing for spacing in volume.spacing]
    smoothed: FloatArray = ndimage.gaussian_filter(hu, sigma=sigma, truncate=3.0)
    return smoothed


class CtBasicPipeline:
    """Body, lungs, airway, bone and fat from HU thresholds; volumes in ml. Any CT."""

    name = "ct_basic"
    version = "1.0.0"

    def __init__(self, **options: Any) -> None:
        self.options = CtBasicOptions(**options)

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        modality = facts.modality or volume.modality
        if modality and modality != "CT":
            raise PipelineError(f"ct_basic needs a CT series (this one is {modality})")
        hu = smooth_hu(volume, self.options.smoothing_sigma_mm)
        body = segment_body(hu, volume, self.options)
        lungs = segment_lungs_and_airway(hu, volume, body, self.options)
        # Bone from unsmoothed values: blur would widen thin cortical bone (ribs) by about a
        # sigma, because the bone threshold is far below the cortical/soft-tissue midpoint.
        bone = segment_bone(volume.array, volume, body, self.options)
        fat = segment_adipose_tissue(hu, volume, body, self.options)
        masks: list[tuple[str, BoolArray]] = [
            ("body", body),
            ("adipose_tissue", fat),
            ("bone", bone),
            ("lung_left", lungs.lung_left),
            ("lung_right", lungs.lung_right),
            ("airway", lungs.airway),
        ]
        label_map = np.zeros(volume.shape, dtype=np.uint8)
        for name, mask in masks:  # lowest priority first, each overwrites the ones before
            label_map[mask] = LABELS[name]
        notes = list(lungs.notes)
        if not body.any():
            notes.append("no body in the field of view")
        return PipelineResult(
            label_map=label_map,
            segments=SEGMENTS,
            measurements=segment_volumes(label_map, volume, SEGMENTS),
            notes=tuple(notes),
        )
