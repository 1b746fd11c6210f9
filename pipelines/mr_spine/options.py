"""The options of the mr_spine pipeline (the mapping under `pipelines.mr_spine` in the YAML).

A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.runtime import InferenceOptions

__all__ = ["MrSpineOptions"]


class MrSpineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # TotalSpineSeg step 1 (Dataset101: one input channel; classes as its nnunet_step1 map:
    # discs 1, landmark discs C2-C3 2, C7-T1 3, T12-L1 4, L5-S 5, vertebrae 6, C1 7, canal 8,
    # cord 9) and step 2 (Dataset102: image + odd discs; discs 1, landmarks 2-5, odd vertebrae
    # 7, even vertebrae 8, sacrum 9, canal 10, cord 11), both nnU-Net v2 results folders.
    step1_model: str = Field(default="totalspineseg_step1", min_length=1)
    step2_model: str = Field(default="totalspineseg_step2", min_length=1)
    inference: InferenceOptions = InferenceOptions()
    # A structure labelled in fewer voxels than this is dropped (a note says so): specks
    # between two vertebrae must not become a level of their own.
    min_part_voxels: int = Field(default=10, ge=0)
