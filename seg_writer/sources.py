"""The source images of a label map, checked and arranged the way highdicom expects them.

Slice k of the label map belongs to ``sources[k]``. Two shapes of input exist:

- single-frame instances (CT Image, MR Image ...), one SourceImage each, in any order. highdicom
  pairs ``pixel_array[i]`` with ``source_images[i]`` and sorts the planes by position itself, so
  the instances are passed in label-map order. Only instances with at least one labelled pixel are
  passed: the SEG references exactly the instances it has frames for (Common Instance Reference,
  PS3.3 C.12.2; Derivation Image, C.7.6.16.2.6).
- one multi-frame instance (Enhanced CT/MR ...), whose frames appear as SourceImages with a
  frame_number, in any order and possibly not all of them. highdicom would pair array slices with
  *all* source frames in frame order; instead the plane positions of the chosen frames are given
  explicitly and highdicom matches them to source frames by position (derivation references).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from seg_writer.errors import WriterInputError

__all__ = [
    "ArrangedSources",
    "SourceImage",
    "arrange_sources",
    "check_sources",
    "patient_name_copied_verbatim",
    "source_instances",
    "source_position",
]


@dataclass(frozen=True)
class SourceImage:
    """One slice of the label map: a source instance, and its frame if it is multi-frame."""

    dataset: Dataset  # header of the source instance (pixel data may be absent)
    frame_number: int | None = None  # 1-based frame of a multi-frame source; None if single-frame


@dataclass(frozen=True, eq=False)
class ArrangedSources:
    """Arguments for ``highdicom.seg.Segmentation``: planes paired with source images."""

    source_images: tuple[Dataset, ...]
    pixel_array: npt.NDArray[np.integer]  # (planes, rows, columns)
    plane_positions: tuple[hd.PlanePositionSequence, ...] | None  # None: copied from sources


def check_sources(sources: Sequence[SourceImage], label_map_shape: tuple[int, ...]) -> None:
    """Raise WriterInputError unless the sources describe the label map's grid: one source
    slice per label-map slice, one study, series and Frame of Reference, one matrix size."""
    if not sources:
        raise WriterInputError("no source images given")
    if len(label_map_shape) != 3:
        raise WriterInputError(f"the label map must be 3D (got shape {label_map_shape})")
    if label_map_shape[0] != len(sources):
        raise WriterInputError(
            f"the label map has {label_map_shape[0]} slices but {len(sources)} source images "
            "were given (one per slice)"
        )
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(source.dataset.get(keyword, "") or "") for source in sources}
        if "" in values:
            raise WriterInputError(f"a source image has no {keyword}")
        if len(values) > 1:
            raise WriterInputError(
                f"the source images have {len(values)} different {keyword} values; "
                "a SEG derives from one series in one Frame of Reference"
            )
    for source in sources:
        matrix = (int(source.dataset.get("Rows", 0)), int(source.dataset.get("Columns", 0)))
        if matrix != tuple(label_map_shape[1:]):
            raise WriterInputError(
                f"source {source.dataset.get('SOPInstanceUID', '?')} is {matrix[0]}x{matrix[1]} "
                f"but the label map slices are {label_map_shape[1]}x{label_map_shape[2]}"
            )
    multi_frame = [source.frame_number is not None for source in sources]
    if any(multi_frame) and not all(multi_frame):
        raise WriterInputError(
            "either every source image has a frame_number (one multi-frame instance) or none does"
        )
    if all(multi_frame):
        _check_multi_frame(sources)
    else:
        _check_single_frames(sources)


def arrange_sources(
    sources: Sequence[SourceImage], label_map: npt.NDArray[np.integer]
) -> ArrangedSources:
    """Pair label-map slices with source images for highdicom, leaving out slices without any
    labelled pixel (they would be omitted from the SEG anyway). Assumes `check_sources` passed
    and at least one slice is labelled."""
    labelled = np.flatnonzero(label_map.reshape(label_map.shape[0], -1).any(axis=1)).tolist()
    pixel_array = label_map[labelled]
    if sources[0].frame_number is None:
        return ArrangedSources(tuple(sources[k].dataset for k in labelled), pixel_array, None)
    dataset = sources[0].dataset
    positions = tuple(_frame_position(dataset, _frame_number(sources[k])) for k in labelled)
    return ArrangedSources((dataset,), pixel_array, positions)


def source_instances(sources: Sequence[SourceImage]) -> list[Dataset]:
    """Each source instance once, in first-seen order (a multi-frame instance is one)."""
    seen: dict[str, Dataset] = {}
    for source in sources:
        seen.setdefault(str(source.dataset.SOPInstanceUID), source.dataset)
    return list(seen.values())


@contextmanager
def patient_name_copied_verbatim() -> Iterator[None]:
    """highdicom warns when the PatientName it copies has a single component ("HFS" in a real
    MR series). The writer copies the source's name as it is, never "repairs" it, and the
    warning text carries the name itself, which must not reach logs above DEBUG; so this one
    warning is silenced around the copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The string .* is unlikely to represent the intended person name"
        )
        yield


def _check_single_frames(sources: Sequence[SourceImage]) -> None:
    uids = [str(source.dataset.get("SOPInstanceUID", "") or "") for source in sources]
    if "" in uids:
        raise WriterInputError("a source image has no SOPInstanceUID")
    if len(set(uids)) != len(uids):
        raise WriterInputError("a single-frame source instance appears more than once")
    for source in sources:
        if "PerFrameFunctionalGroupsSequence" in source.dataset:
            raise WriterInputError(
                f"source {source.dataset.SOPInstanceUID} is a multi-frame image: "
                "give each of its slices as SourceImage(dataset, frame_number)"
            )
        for keyword in ("ImagePositionPatient", "PixelSpacing", "SliceThickness"):
            # highdicom takes the SEG's plane positions and pixel measures from these.
            if keyword not in source.dataset:
                raise WriterInputError(f"source {source.dataset.SOPInstanceUID} has no {keyword}")
    orientations = {tuple(source.dataset.get("ImageOrientationPatient", ())) for source in sources}
    if len(orientations) != 1 or len(next(iter(orientations))) != 6:
        # highdicom requires the very same ImageOrientationPatient on every source image.
        raise WriterInputError("the source images do not share one ImageOrientationPatient")


def _check_multi_frame(sources: Sequence[SourceImage]) -> None:
    dataset = sources[0].dataset
    if any(source.dataset.get("SOPInstanceUID") != dataset.SOPInstanceUID for source in sources):
        raise WriterInputError("sources with a frame_number must all be frames of one instance")
    numbers = [_frame_number(source) for source in sources]
    frames = int(dataset.get("NumberOfFrames", 0))
    if len(set(numbers)) != len(numbers):
        raise WriterInputError("a source frame appears more than once")
    if any(not 1 <= number <= frames for number in numbers):
        raise WriterInputError(f"frame numbers must lie in 1..{frames} (NumberOfFrames)")
    shared = dataset.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    if "PlaneOrientationSequence" not in shared or "PixelMeasuresSequence" not in shared:
        # highdicom takes orientation and pixel spacing of a multi-frame source from its shared
        # functional groups only.
        raise WriterInputError(
            "the multi-frame source has no shared plane orientation and pixel measures"
        )
    for number in numbers:
        _frame_position(dataset, number)  # each frame has its plane position


def source_position(source: SourceImage) -> list[float]:
    """ImagePositionPatient of a source image (of its frame, for a multi-frame one)."""
    if source.frame_number is None:
        return [float(value) for value in source.dataset.ImagePositionPatient]
    plane = _frame_position(source.dataset, source.frame_number)
    return [float(value) for value in plane[0].ImagePositionPatient]


def _frame_number(source: SourceImage) -> int:
    assert source.frame_number is not None
    return source.frame_number


def _frame_position(dataset: Dataset, frame_number: int) -> hd.PlanePositionSequence:
    try:
        item = dataset.PerFrameFunctionalGroupsSequence[frame_number - 1]
        position = item.PlanePositionSequence[0].ImagePositionPatient
    except (AttributeError, IndexError) as exc:
        raise WriterInputError(
            f"frame {frame_number} of the multi-frame source has no per-frame plane position"
        ) from exc
    return hd.PlanePositionSequence(
        hd.CoordinateSystemNames.PATIENT, image_position=[float(value) for value in position]
    )
