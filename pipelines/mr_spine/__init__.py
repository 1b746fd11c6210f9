"""mr_spine: TotalSpineSeg's two nnU-Net steps and its level labelling (our implementation).

`pipelines.mr_spine.levels` numbers discs and vertebrae along the spine, pure arithmetic;
`pipelines.mr_spine.labelling` applies it to the steps' label maps; `MrSpinePipeline` runs the
models and chains them.
"""

from pipelines.mr_spine.options import MrSpineOptions
from pipelines.mr_spine.pipeline import MrSpinePipeline

__all__ = ["MrSpineOptions", "MrSpinePipeline"]
