"""The writer's exceptions, one tree.

WriterInputError (a ValueError)   the inputs cannot become a valid SEG + SR; the message says why
└── NothingSegmentedError         no segment has a single voxel: a SEG needs at least one segment
"""

from __future__ import annotations

__all__ = ["NothingSegmentedError", "WriterInputError"]


class WriterInputError(ValueError):
    """Sources, label map, segment table or measurements do not fit together (a permanent
    failure: writing the same inputs again gives the same answer)."""


class NothingSegmentedError(WriterInputError):
    """Every segment of the result is empty. A Segmentation needs at least one segment
    (PS3.3 C.8.20.2, Segment Sequence is 1-n), so there is nothing to write; the caller decides
    what an empty result means for its job."""
