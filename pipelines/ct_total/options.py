"""The options of the ct_total pipeline (the mapping under `pipelines.ct_total` in the YAML).

A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.runtime import InferenceOptions

__all__ = ["AUTOORGAN_TASKS", "BONE_TASKS", "CtTotalOptions", "IslandRepairOptions"]

# The AutoOrgan task models as `dicom-node models install ... --name NAME` names them here, in
# the order they are merged (a later task wins where two fine tasks overlap).
AUTOORGAN_TASKS: tuple[str, ...] = (
    "autoorgan_global",
    "autoorgan_organ",
    "autoorgan_vertebrae",
    "autoorgan_rib",
    "autoorgan_upper_limb",
    "autoorgan_hip",
    "autoorgan_lower_limb",
)
# Tasks whose every label is bone (or a group of bones): the labels island repair cleans up.
BONE_TASKS: tuple[str, ...] = (
    "autoorgan_global",
    "autoorgan_vertebrae",
    "autoorgan_rib",
    "autoorgan_upper_limb",
    "autoorgan_hip",
    "autoorgan_lower_limb",
)
# Bones the model sees as several separate pieces (the small bones of hands and feet): every
# piece is kept, however small, instead of being treated as an island.
MULTI_PART_BONES: tuple[str, ...] = tuple(
    f"{bone}_{side}"
    for bone in (
        "carpal",
        "metacarpal",
        "phalanges_hand",
        "tarsal",
        "metatarsal",
        "phalanges_feet",
    )
    for side in ("left", "right")
)


class IslandRepairOptions(BaseModel):
    """Connected-component clean-up of bone labels (see `pipelines.postprocess.repair_islands`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # Models whose labels are bones. Every label of these models in `models` is repaired.
    bone_models: tuple[str, ...] = BONE_TASKS
    # A component of at least this fraction of its label's largest component is kept as a main
    # part (a vertebra the model split at the pedicles); smaller ones are islands.
    keep_fraction: float = Field(default=0.25, gt=0.0, le=1.0)
    # The same for bones made of several pieces; 0 keeps every piece.
    multi_part_bones: tuple[str, ...] = MULTI_PART_BONES
    multi_part_keep_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    # An island touching no other bone label is removed below this volume, else kept.
    min_island_ml: float = Field(default=0.5, ge=0.0)


class CtTotalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Installed task models, in merge order. Where fine tasks overlap the later one wins;
    # `coarse_models` are painted first whatever their place, so their group labels stay only
    # where no other task labels the voxel.
    models: tuple[str, ...] = Field(default=AUTOORGAN_TASKS, min_length=1)
    coarse_models: tuple[str, ...] = ("autoorgan_global",)
    inference: InferenceOptions = InferenceOptions()
    repair: IslandRepairOptions = IslandRepairOptions()

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must not name a model twice")
        return self
