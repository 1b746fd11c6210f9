"""DICOM SEG and TID 1500 SR writing with highdicom.

`write_results(sources, result, algorithm, options)` turns a pipeline result into one
Segmentation and one Comprehensive 3D SR measurement report in the source series' study; the
SEG shares the sources' Frame of Reference, the SR refers to the SEG and the source series.
Segments without voxels are left out of both; the written segments are numbered 1..n in label
order (`ResultDocuments.segment_numbers`). Never imports dicom_node, pynetdicom or the index
(see DESIGN.md).
"""

from seg_writer.errors import NothingSegmentedError, WriterInputError
from seg_writer.options import (
    ARTIFICIAL_INTELLIGENCE,
    AlgorithmInfo,
    SegmentationEncoding,
    WriterOptions,
)
from seg_writer.sources import SourceImage
from seg_writer.uids import ResultUids
from seg_writer.writer import ResultDocuments, write_results

__all__ = [
    "ARTIFICIAL_INTELLIGENCE",
    "AlgorithmInfo",
    "NothingSegmentedError",
    "ResultDocuments",
    "ResultUids",
    "SegmentationEncoding",
    "SourceImage",
    "WriterInputError",
    "WriterOptions",
    "write_results",
]
