"""The options of the ct_abdomen pipeline (the mapping under `pipelines.ct_abdomen` in the YAML).

A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.runtime import InferenceOptions

__all__ = ["CtAbdomenOptions"]


class CtAbdomenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The installed AbdomenAtlas-style model (MONAI U-Net / SwinUNETR checkpoint).
    model: str = Field(default="abdomenatlas", min_length=1)
    inference: InferenceOptions = InferenceOptions()
    # An organ whose mean normalised predictive entropy (H(p)/ln C, 0..1) inside it is above
    # this is marked "review recommended". 0.3 is, for the 10 classes of AbdomenAtlas
    # (9 organs + background), about ln 2 / ln 10: on average every voxel of the organ as
    # uncertain as a 50/50 choice between two classes. A well-segmented organ stays far
    # below (only its boundary voxels are uncertain).
    review_entropy_threshold: float = Field(default=0.3, gt=0.0, lt=1.0)
    # An organ labelled in fewer voxels than this counts as not found: its voxels are cleared
    # (a note says so) and it gets no measurements.
    min_organ_voxels: int = Field(default=100, ge=0)
