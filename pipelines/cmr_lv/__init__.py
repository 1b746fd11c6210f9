"""cmr_lv: LV blood pool and myocardium on a short-axis cine by a 2D network; LV function
(EDV, ESV, SV, EF, mass) and the volume curve."""

from pipelines.cmr_lv.options import CmrLvOptions
from pipelines.cmr_lv.pipeline import CmrLvPipeline, LvFunction, lv_function

__all__ = ["CmrLvOptions", "CmrLvPipeline", "LvFunction", "lv_function"]
