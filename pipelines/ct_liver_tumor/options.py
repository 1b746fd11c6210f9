"""The options of the ct_liver_tumor pipeline (the mapping under `pipelines.ct_liver_tumor`).

A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.runtime import InferenceOptions

__all__ = ["CtLiverTumorOptions"]


class CtLiverTumorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Step 1 on the whole image (its manifest carries the LiTS window -175..250 HU and
    # 1 x 1 x 2 mm spacing); it must label "liver" (a "liver_tumor" label counts as liver too).
    liver_model: str = Field(default="lits_liver", min_length=1)
    # Step 2 inside the liver's bounding box; it must label "liver_tumor".
    tumor_model: str = Field(default="lits_tumor", min_length=1)
    # Added around the liver's bounding box on every side (clipped to the image), so the
    # tumor model sees the liver's edge in context.
    margin_mm: float = Field(default=10.0, ge=0.0, le=100.0)
    # Tumor components (26-connected) with fewer voxels are dropped: the LiTS cascade's
    # false-positive filter.
    min_tumor_voxels: int = Field(default=30, ge=1)
    inference: InferenceOptions = InferenceOptions()
