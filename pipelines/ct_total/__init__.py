"""ct_total: AutoOrgan task models merged into one label map, bone islands repaired.

`number_structures` and `paint_task` merge task label maps, `pipelines.postprocess`
repairs the bone labels; `CtTotalPipeline` chains them (see `pipelines.ct_total.pipeline`).
"""

from pipelines.ct_total.merge import merged_dtype, number_structures, paint_task
from pipelines.ct_total.options import (
    AUTOORGAN_TASKS,
    BONE_TASKS,
    CtTotalOptions,
    IslandRepairOptions,
)
from pipelines.ct_total.pipeline import CtTotalPipeline, repair_notes, structure_segments

__all__ = [
    "AUTOORGAN_TASKS",
    "BONE_TASKS",
    "CtTotalOptions",
    "CtTotalPipeline",
    "IslandRepairOptions",
    "merged_dtype",
    "number_structures",
    "paint_task",
    "repair_notes",
    "structure_segments",
]
