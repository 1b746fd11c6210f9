"""The ct_liver_tumor pipeline (LiTS cascade): liver -> box -> tumor -> paste back -> filter.

1. The liver model on the whole image; its largest 26-connected component is the liver
   (other components are dropped, with a note).
2. The liver's bounding box plus `margin_mm` on every side, clipped to the image, is cut out
   with exact geometry (`ImageVolume.crop`: same spacing and direction, origin at the box's
   first voxel), so the tumor model sees the patient where it is.
3. The tumor model inside the box; its tumor is pasted back at the box, and kept only inside
   the liver (the liver component with its enclosed holes filled, so a tumor the liver model
   left out of the liver's inside still counts); tumor outside is dropped, with a note.
4. Tumor components of fewer than `min_tumor_voxels` voxels (26-connected) are dropped.
5. Label map {liver: 1, liver_tumor: 2}; the liver segment is the liver without its tumors.

Measurements (TID 300 in the SR): the liver segment's volume is that of the segment (liver
without tumor, what the SEG shows); the LiTS organ volume, liver including tumor, is their
sum and given in a note. On the tumor segment: total tumor volume, tumor count, the largest
tumor's volume and its longest axial diameter (`pipelines.ct_liver_tumor.measure`).

A CT in which the liver model finds no liver is not an error of the pipeline: it returns an
empty label map and the note "no liver found" (the tumor model does not run). A SEG needs a
segment, so the node fails that job with the note as its reason (docs/PIPELINES.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.codes import (
    LESIONS,
    LONG_AXIS,
    MAXIMUM,
    MILLILITER,
    MILLIMETER,
    NUMBER_OF_LESIONS,
    VOLUME,
    segment_for,
)
from pipelines.ct_liver_tumor.measure import TumorStatistics, tumor_statistics
from pipelines.ct_liver_tumor.options import CtLiverTumorOptions
from pipelines.model_pipeline import ModelPipeline
from pipelines.models import InstalledModel
from pipelines.postprocess import (
    bounding_box,
    largest_component,
    margin_voxels,
    remove_small_components,
)
from pipelines.result import Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["LABELS", "SEGMENTS", "CtLiverTumorPipeline", "model_values", "tumor_measurements"]

logger = logging.getLogger(__name__)

LABELS: dict[str, int] = {"liver": 1, "liver_tumor": 2}
SEGMENTS: tuple[Segment, ...] = tuple(segment_for(name, label) for name, label in LABELS.items())
LIVER = LABELS["liver"]
TUMOR = LABELS["liver_tumor"]


def model_values(model: InstalledModel, names: tuple[str, ...], required: str) -> list[int]:
    """The model's label values named one of `names`; refuses a model that lacks `required`."""
    labels = model.manifest.labels
    if required not in labels.values():
        raise PipelineError(f"model {model.name} does not label {required!r}")
    return sorted(value for value, name in labels.items() if name in names)


def tumor_measurements(stats: TumorStatistics, volume: ImageVolume) -> tuple[Measurement, ...]:
    """Count and, when there is a tumor, the largest one's volume (Volume, derivation
    Maximum) and its longest axial diameter (Long axis, derivation Maximum: the maximum over
    its axial slices), all on the tumor segment; its total volume comes with the segment
    volumes, or is 0 ml here when there is no tumor."""
    measurements = [Measurement(NUMBER_OF_LESIONS, float(stats.count), LESIONS, TUMOR)]
    if stats.count:
        largest_ml = stats.largest_voxels * volume.voxel_volume_mm3 / 1000.0
        measurements += [
            Measurement(VOLUME, largest_ml, MILLILITER, TUMOR, derivation=MAXIMUM),
            Measurement(
                LONG_AXIS, stats.largest_diameter_mm, MILLIMETER, TUMOR, derivation=MAXIMUM
            ),
        ]
    else:
        measurements.append(Measurement(VOLUME, 0.0, MILLILITER, TUMOR))
    return tuple(measurements)


class CtLiverTumorPipeline(ModelPipeline):
    """Liver and liver tumors by a two-model cascade; volumes, tumor count and size."""

    name = "ct_liver_tumor"
    code_version = "1.0.0"

    def __init__(self, *, runtime: ModelRuntime | None = None, **options: Any) -> None:
        super().__init__(runtime)
        self.options = CtLiverTumorOptions(**options)

    @property
    def required_models(self) -> tuple[str, ...]:
        return (self.options.liver_model, self.options.tumor_model)

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        runtime, installed = self.prepare(volume, facts)
        options = self.options
        liver_values = model_values(
            installed[options.liver_model], ("liver", "liver_tumor"), "liver"
        )
        tumor_values = model_values(installed[options.tumor_model], ("liver_tumor",), "liver_tumor")
        notes: list[str] = []

        liver_labels = runtime.predict(options.liver_model, volume, options.inference).labels
        found = np.isin(liver_labels, liver_values)
        liver = largest_component(found)
        box = bounding_box(liver, margin_voxels(options.margin_mm, volume.spacing))
        if box is None:
            notes.append("no liver found: the liver model labelled no voxel as liver")
            empty = np.zeros(volume.shape, dtype=np.uint8)
            return PipelineResult(label_map=empty, segments=SEGMENTS, notes=tuple(notes))
        outside = int(np.count_nonzero(found)) - int(np.count_nonzero(liver))
        if outside:
            notes.append(f"liver: {outside} voxels outside the largest liver component dropped")

        crop = volume.crop(box)
        tumor_labels = runtime.predict(options.tumor_model, crop, options.inference).labels
        tumor = np.isin(tumor_labels, tumor_values)
        inside = ndimage.binary_fill_holes(liver[box])
        outside_liver = int(np.count_nonzero(tumor & ~inside))
        if outside_liver:
            notes.append(f"tumor: {outside_liver} voxels outside the liver dropped")
        kept = remove_small_components(tumor & inside, options.min_tumor_voxels)
        if kept.removed_components:
            notes.append(
                f"tumor: {kept.removed_components} components of fewer than "
                f"{options.min_tumor_voxels} voxels dropped ({kept.removed_voxels} voxels)"
            )

        label_map = np.zeros(volume.shape, dtype=np.uint8)
        label_map[liver] = LIVER
        label_map[box][kept.mask] = TUMOR
        stats = tumor_statistics(label_map == TUMOR, volume)
        voxel_ml = volume.voxel_volume_mm3 / 1000.0
        organ_ml = float(np.count_nonzero(label_map)) * voxel_ml
        notes.append(f"liver volume including tumor (LiTS organ volume): {organ_ml:.1f} ml")
        notes.append(f"{stats.count} tumors" if stats.count != 1 else "1 tumor")
        logger.debug("ct_liver_tumor: box %s, %d tumors", box, stats.count)
        return PipelineResult(
            label_map=label_map,
            segments=SEGMENTS,
            measurements=segment_volumes(label_map, volume, SEGMENTS)
            + tumor_measurements(stats, volume),
            notes=tuple(notes),
        )
