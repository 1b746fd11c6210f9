"""write_results: a pipeline result and its source images in, one SEG and one TID 1500 SR out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from pydicom import Dataset

from pipelines.result import PipelineResult
from seg_writer.options import AlgorithmInfo, WriterOptions
from seg_writer.report import check_measurements, create_report
from seg_writer.segmentation import create_segmentation, plan_segments
from seg_writer.sources import SourceImage, check_sources, source_instances
from seg_writer.uids import ResultUids

__all__ = ["ResultDocuments", "write_results"]


@dataclass(frozen=True, eq=False)
class ResultDocuments:
    segmentation: Dataset  # a highdicom.seg.Segmentation
    report: Dataset  # a highdicom.sr.Comprehensive3DSR
    # Pipeline label -> SegmentNumber in the SEG, for the segments written (empty ones are not).
    segment_numbers: Mapping[int, int] = field(default_factory=dict)


def write_results(
    sources: Sequence[SourceImage],
    result: PipelineResult,
    algorithm: AlgorithmInfo,
    options: WriterOptions,
    *,
    uids: ResultUids | None = None,
) -> ResultDocuments:
    """Encode `result` as a DICOM SEG (PS3.3 A.51) and a Comprehensive 3D SR holding a TID 1500
    Measurement Report that refers to it; both in the sources' study and Frame of Reference.

    ``result.label_map[k]`` is the label map of ``sources[k]``. Segments without voxels are left
    out of both documents (their measurements, if any, stay in the SR without an ROI). Raises
    WriterInputError (a ValueError) when the inputs do not fit together, NothingSegmentedError
    when no segment has a voxel. `uids` fixes the documents' UIDs (random ones otherwise).
    """
    uids = uids or ResultUids.generate()
    check_sources(sources, result.label_map.shape)
    written = plan_segments(result, uids.segmentation_instance)
    check_measurements(result, written)
    segmentation = create_segmentation(sources, result.label_map, written, algorithm, options, uids)
    report = create_report(
        segmentation, source_instances(sources), result, written, algorithm, options, uids
    )
    numbers = {item.segment.label: item.segment_number for item in written}
    return ResultDocuments(segmentation, report, MappingProxyType(numbers))
