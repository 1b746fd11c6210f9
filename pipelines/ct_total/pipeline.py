"""The ct_total pipeline (AutoOrgan): task models -> one label map -> bone island repair -> volumes.

Merge rule, where two tasks label the same voxel:
- the coarse tasks (`coarse_models`, AutoOrgan's "global" skeleton groups: skull, vertebrae,
  rib, upper_limb, hip, lower_limb) are painted first, so a group label stays only where no
  other task labels the voxel (a finer vertebra, rib or limb bone always wins over its group);
- between the other tasks the later one in `models` wins (by default bones over organs, as
  bone tasks come after the organ task).

Then the bone labels (every label of `repair.bone_models`) are cleaned up with
`pipelines.postprocess.repair_islands`: main components kept, islands glued to another bone
given to the bone sharing the largest border (the rib/vertebra confusion at the
costovertebral junction), small loose islands removed. Every change is a note.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.codes import segment_for
from pipelines.ct_total.merge import merged_dtype, number_structures, paint_task
from pipelines.ct_total.options import CtTotalOptions
from pipelines.model_pipeline import ModelPipeline
from pipelines.models import InstalledModel
from pipelines.postprocess import IslandRepair, repair_islands
from pipelines.result import PipelineResult, Segment
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["CtTotalPipeline", "structure_segments"]

logger = logging.getLogger(__name__)


def structure_segments(numbers: Mapping[str, int]) -> tuple[Segment, ...]:
    """The segment table for merged structure numbers; a name without codes refuses the run."""
    try:
        return tuple(segment_for(name, label) for name, label in numbers.items())
    except KeyError as exc:
        raise PipelineError(f"a model labels a structure without codes: {exc}") from exc


class CtTotalPipeline(ModelPipeline):
    """AutoOrgan task models merged into one label map with bone island repair; volumes in ml."""

    name = "ct_total"
    code_version = "1.0.0"

    def __init__(self, *, runtime: ModelRuntime | None = None, **options: Any) -> None:
        super().__init__(runtime)
        self.options = CtTotalOptions(**options)

    @property
    def required_models(self) -> tuple[str, ...]:
        return self.options.models

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        runtime, installed = self.prepare(volume, facts)
        models = self.options.models
        numbers = number_structures([installed[name].manifest.labels for name in models])
        segments = structure_segments(numbers)
        merged = self._merge(runtime, installed, volume, numbers)
        notes = list(merged.notes)
        label_map: npt.NDArray[np.integer] = merged.label_map
        if self.options.repair.enabled:
            repair = self._repair(label_map, installed, numbers, volume)
            label_map = repair.label_map
            notes += repair_notes(repair, numbers)
        return PipelineResult(
            label_map=label_map,
            segments=segments,
            measurements=segment_volumes(label_map, volume, segments),
            notes=tuple(notes),
        )

    def _merge(
        self,
        runtime: ModelRuntime,
        installed: Mapping[str, InstalledModel],
        volume: ImageVolume,
        numbers: Mapping[str, int],
    ) -> _Merged:
        coarse = [name for name in self.options.models if name in self.options.coarse_models]
        fine = [name for name in self.options.models if name not in self.options.coarse_models]
        merged = np.zeros(volume.shape, dtype=merged_dtype(len(numbers)))
        notes = []
        for name in coarse + fine:  # painting order: each task overwrites the ones before
            prediction = runtime.predict(name, volume, self.options.inference)
            logger.debug("ct_total: %s predicted (%s)", name, prediction.timings)
            labels = installed[name].manifest.labels
            unnamed = paint_task(merged, prediction.labels, labels, numbers)
            if unnamed:
                notes.append(
                    f"model {name} output label values its manifest does not name, "
                    f"left out: {unnamed}"
                )
        return _Merged(merged, tuple(notes))

    def _repair(
        self,
        label_map: npt.NDArray[np.integer],
        installed: Mapping[str, InstalledModel],
        numbers: Mapping[str, int],
        volume: ImageVolume,
    ) -> IslandRepair:
        options = self.options.repair
        fractions: dict[int, float] = {}
        for name in self.options.models:
            if name not in options.bone_models:
                continue
            for structure in installed[name].manifest.labels.values():
                multi_part = structure in options.multi_part_bones
                fraction = options.multi_part_keep_fraction if multi_part else options.keep_fraction
                fractions[numbers[structure]] = fraction
        min_voxels = math.ceil(options.min_island_ml * 1000.0 / volume.voxel_volume_mm3 - 1e-9)
        return repair_islands(label_map, fractions, min_voxels)


@dataclass(frozen=True, eq=False)
class _Merged:
    label_map: npt.NDArray[np.unsignedinteger]
    notes: tuple[str, ...]


def repair_notes(repair: IslandRepair, numbers: Mapping[str, int]) -> list[str]:
    """One note per structure whose islands changed, and a total."""
    names = {label: name for name, label in numbers.items()}
    notes = []
    for change in repair.changes:
        where = "removed" if change.to_label == 0 else f"reassigned to {names[change.to_label]}"
        notes.append(
            f"island repair: {names[change.label]}: {change.voxels} voxels "
            f"in {change.islands} islands {where}"
        )
    notes.append(
        f"island repair: {repair.reassigned_voxels} voxels reassigned, "
        f"{repair.removed_voxels} removed"
    )
    return notes
