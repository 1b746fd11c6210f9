"""Segmentation pipelines: volume in, PipelineResult out.

Never imports dicom_node, pynetdicom or the index (see DESIGN.md).
"""

from pipelines.base import Pipeline, PipelineError, SeriesFacts, segment_volumes
from pipelines.registry import create_pipeline, pipeline_names
from pipelines.result import Code, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

__all__ = [
    "Code",
    "ImageVolume",
    "Measurement",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Segment",
    "SeriesFacts",
    "create_pipeline",
    "pipeline_names",
    "segment_volumes",
]
