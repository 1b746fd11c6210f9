"""Segmentation pipelines: volume in, PipelineResult out.

Never imports dicom_node, pynetdicom or the index (see DESIGN.md).
"""

from pipelines.base import Pipeline, PipelineError, SeriesFacts, segment_volumes
from pipelines.registry import create_pipeline, pipeline_names, pipeline_uses_models
from pipelines.result import Code, Evaluation, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

__all__ = [
    "Code",
    "Evaluation",
    "ImageVolume",
    "Measurement",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Segment",
    "SeriesFacts",
    "create_pipeline",
    "pipeline_names",
    "pipeline_uses_models",
    "segment_volumes",
]
