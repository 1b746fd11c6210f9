"""ct_basic: body, lungs, airway, bone and fat from HU thresholds; no model weights.

The steps are plain functions (`segment_body`, `segment_lungs_and_airway`, `segment_bone`,
`segment_adipose_tissue`) on a float32 HU array and its `ImageVolume` geometry;
`CtBasicPipeline` chains them into one label map (see `pipelines.ct_basic.pipeline`).
"""

from pipelines.ct_basic.body import segment_body
from pipelines.ct_basic.lungs import LungSegmentation, segment_lungs_and_airway
from pipelines.ct_basic.options import CtBasicOptions
from pipelines.ct_basic.pipeline import LABELS, SEGMENTS, CtBasicPipeline, smooth_hu
from pipelines.ct_basic.tissue import segment_adipose_tissue, segment_bone

__all__ = [
    "LABELS",
    "SEGMENTS",
    "CtBasicOptions",
    "CtBasicPipeline",
    "LungSegmentation",
    "segment_adipose_tissue",
    "segment_body",
    "segment_bone",
    "segment_lungs_and_airway",
    "smooth_hu",
]
