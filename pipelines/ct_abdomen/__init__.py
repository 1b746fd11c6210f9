"""ct_abdomen: AbdomenAtlas-style abdominal organs with per-organ uncertainty.

`organ_uncertainty` is the plain function (mean predictive entropy per organ);
`CtAbdomenPipeline` chains model -> organs -> measurements -> review flags.
"""

from pipelines.ct_abdomen.options import CtAbdomenOptions
from pipelines.ct_abdomen.pipeline import CtAbdomenPipeline, OrganUncertainty, organ_uncertainty

__all__ = ["CtAbdomenOptions", "CtAbdomenPipeline", "OrganUncertainty", "organ_uncertainty"]
