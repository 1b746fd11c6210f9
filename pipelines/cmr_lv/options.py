"""The options of the cmr_lv pipeline (the mapping under `pipelines.cmr_lv` in the YAML).

A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.runtime import InferenceOptions

__all__ = ["CmrLvOptions"]


class CmrLvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The installed 2D network (MONAI, TorchScript or ONNX; `input.spatial_dims: 2`) whose
    # labels name "lv_blood_pool" and "lv_myocardium".
    model: str = Field(default="cmr_lv_resunet", min_length=1)
    # LV mass = myocardial volume at end diastole x this density (the usual 1.05 g/ml).
    myocardial_density_g_per_ml: float = Field(default=1.05, gt=0.5, lt=2.0)
    # A stack with fewer slice locations is refused: volumes from one or two slices of a
    # short-axis stack are wrong, not coarse.
    min_slices: int = Field(default=3, ge=1)
    # A series with fewer phases is no cine of the whole cycle (an MR volume routed here by
    # mistake has one): end systole could not be found, so it is refused.
    min_phases: int = Field(default=8, ge=2)
    inference: InferenceOptions = InferenceOptions()
