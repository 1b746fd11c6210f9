"""The mr_spine pipeline (TotalSpineSeg): step 1 -> discs numbered -> step 2 with the odd
discs -> every disc and vertebra by level, cord and canal; volumes, and what anchored the levels.

Step 1's discs are counted from the landmark discs (C2-C3, C7-T1, T12-L1, L5-S) and C1 it
found (`pipelines.mr_spine.levels`); the odd ones (C2-C3, C4-C5, ...) are step 2's second
input channel. Step 2's map is numbered the same way, its vertebrae from the discs around them
and its odd/even classes. The label map holds TotalSpineSeg's final values
(`pipelines.mr_spine.labelling.TSS_VALUES`). The SR has a volume per structure found (so the
levels found) and, per landmark that anchored the numbering, an evaluation "Vertebral levels
anchored by" with the landmark's code; without any landmark, the discs and vertebrae are
reported without levels and the whole result is marked "review recommended".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cc3d
import numpy as np
import numpy.typing as npt

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.codes import LEVEL_ANCHOR, SEGMENT_CODES, review_recommended, segment_for
from pipelines.model_pipeline import ModelPipeline
from pipelines.models import InstalledModel
from pipelines.mr_spine.labelling import (
    STEP1,
    STEP2,
    TSS_VALUES,
    UNNUMBERED_DISC,
    UNNUMBERED_VERTEBRA,
    StepClasses,
    disc_key,
    final_label_map,
    label_discs,
    odd_disc_mask,
    vertebra_key,
)
from pipelines.mr_spine.levels import C1_ANCHOR, LANDMARK_DISCS, disc_name, vertebra_name
from pipelines.mr_spine.options import MrSpineOptions
from pipelines.result import Code, Evaluation, PipelineResult
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["MrSpinePipeline"]

_NAMES = {value: name for name, value in TSS_VALUES.items()}


class MrSpinePipeline(ModelPipeline):
    """TotalSpineSeg's two nnU-Net steps with its level labelling."""

    name = "mr_spine"
    code_version = "1.0.0"
    modality = "MR"

    def __init__(self, *, runtime: ModelRuntime | None = None, **options: Any) -> None:
        super().__init__(runtime)
        self.options = MrSpineOptions(**options)

    @property
    def required_models(self) -> tuple[str, ...]:
        return (self.options.step1_model, self.options.step2_model)

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        runtime, installed = self.prepare(volume, facts)
        options = self.options
        _check_classes(installed[options.step1_model], STEP1, "step 1")
        _check_classes(installed[options.step2_model], STEP2, "step 2")
        step1 = runtime.predict(options.step1_model, volume, options.inference).labels
        discs = label_discs(step1, volume, STEP1)
        odd = odd_disc_mask(discs).astype(np.float32)
        notes = [f"step 1: {note}" for note in (*discs.notes, *discs.numbering.notes)]
        step2 = runtime.predict(
            options.step2_model, volume, options.inference, extra_channels=[odd]
        ).labels
        step2, dropped = _without_specks(step2, options.min_part_voxels)
        notes += [
            f"step 2: {parts} part(s) of class {value} under min_part_voxels "
            f"{options.min_part_voxels} dropped ({voxels} voxels)"
            for value, (parts, voxels) in dropped.items()
        ]
        final = final_label_map(step2, volume, STEP2)
        notes += [f"step 2: {note}" for note in final.notes]
        label_map = final.label_map
        present = [int(v) for v in np.flatnonzero(np.bincount(label_map.ravel())) if v > 0]
        segments = tuple(segment_for(_NAMES[value], value) for value in present)
        evaluations: list[Evaluation] = [
            Evaluation(LEVEL_ANCHOR, _anchor_code(anchor)) for anchor in final.anchors
        ]
        if np.isin(label_map, (UNNUMBERED_DISC, UNNUMBERED_VERTEBRA)).any():
            evaluations.append(review_recommended())
            notes.append("some discs or vertebrae have no level: review recommended")
        notes.append(_levels_note(final.disc_levels, final.vertebra_levels, final.anchors))
        return PipelineResult(
            label_map=label_map,
            segments=segments,
            measurements=segment_volumes(label_map, volume, segments) if segments else (),
            evaluations=tuple(evaluations),
            notes=tuple(notes),
        )


def _without_specks(
    labels: npt.NDArray[np.integer], min_voxels: int
) -> tuple[npt.NDArray[np.integer], dict[int, tuple[int, int]]]:
    """`labels` without the connected parts (26-connected, per class, one pass) of fewer than
    `min_voxels` voxels, and per class value the parts and voxels dropped."""
    components = cc3d.connected_components(labels, connectivity=26)
    sizes = np.bincount(components.ravel())
    small = sizes < min_voxels
    small[0] = False
    if not small.any():
        return labels, {}
    class_of = np.zeros(len(sizes), dtype=np.int64)
    class_of[components.ravel()] = labels.ravel()  # one class per part
    cleaned = labels.copy()
    cleaned[small[components]] = 0
    dropped = {}
    for value in np.unique(class_of[small]):
        parts = small & (class_of == value)
        dropped[int(value)] = (int(parts.sum()), int(sizes[parts].sum()))
    return cleaned, dropped


def _check_classes(model: InstalledModel, classes: StepClasses, step: str) -> None:
    """A step model must label TotalSpineSeg's class values for that step."""
    values = set(model.manifest.labels)
    if not classes.values <= values:
        raise PipelineError(
            f"model {model.name} labels {sorted(values)}; TotalSpineSeg's {step} has classes "
            f"{sorted(classes.values)}"
        )


def _anchor_code(anchor: str) -> Code:
    if anchor == C1_ANCHOR:
        return SEGMENT_CODES[vertebra_key(1)].type
    return SEGMENT_CODES[disc_key(LANDMARK_DISCS[anchor])].type


def _levels_note(
    discs: tuple[int, ...], vertebrae: tuple[int, ...], anchors: tuple[str, ...]
) -> str:
    if not anchors:
        return "no level landmark found: discs and vertebrae are reported without levels"
    disc_names = ", ".join(disc_name(level) for level in discs) or "none"
    vertebra_names = ", ".join(vertebra_name(level) for level in vertebrae) or "none"
    return (
        f"levels found: discs {disc_names}; vertebrae {vertebra_names}; "
        f"anchored by {', '.join(anchors)}"
    )
