"""ct_liver_tumor: the LiTS cascade (liver model, tumor model inside the liver's box).

`tumor_statistics` and `longest_axial_diameter_mm` measure tumors on any grid;
`CtLiverTumorPipeline` chains liver -> crop -> tumor -> paste back -> filter -> measure.
"""

from pipelines.ct_liver_tumor.measure import (
    TumorStatistics,
    longest_axial_diameter_mm,
    tumor_statistics,
)
from pipelines.ct_liver_tumor.options import CtLiverTumorOptions
from pipelines.ct_liver_tumor.pipeline import LABELS, SEGMENTS, CtLiverTumorPipeline

__all__ = [
    "LABELS",
    "SEGMENTS",
    "CtLiverTumorOptions",
    "CtLiverTumorPipeline",
    "TumorStatistics",
    "longest_axial_diameter_mm",
    "tumor_statistics",
]
