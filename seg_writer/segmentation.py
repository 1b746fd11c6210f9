"""The DICOM Segmentation (PS3.3 A.51) of a pipeline result, built by highdicom.

Segments without a single labelled voxel are left out: a SEG segment without frames says
nothing a reader can show, and highdicom numbers BINARY segments 1..n without gaps anyway. The
written segments are therefore numbered 1..n in ascending label order; `WrittenSegment` keeps
the pairing, and the SR refers to these numbers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from pipelines.result import PipelineResult, Segment
from seg_writer.coding import coded
from seg_writer.errors import NothingSegmentedError, WriterInputError
from seg_writer.layers import fix_layer_references, layered_masks, source_layers
from seg_writer.options import AlgorithmInfo, WriterOptions
from seg_writer.sources import SourceImage, arrange_sources, patient_name_copied_verbatim
from seg_writer.uids import ResultUids, derived_uid

__all__ = ["WrittenSegment", "create_segmentation", "plan_segments"]

logger = logging.getLogger(__name__)

_SLICES_PER_CHUNK = 16  # bounds the temporary index arrays numpy makes for large label maps


@dataclass(frozen=True)
class WrittenSegment:
    """A segment of the result as it appears in the SEG."""

    segment: Segment
    segment_number: int  # SegmentNumber in the SEG, 1..n
    tracking_uid: str  # TrackingUID in the SEG, Tracking Unique Identifier in the SR


def plan_segments(
    result: PipelineResult, segmentation_instance_uid: str
) -> tuple[WrittenSegment, ...]:
    """The non-empty segments in ascending label order, numbered 1..n, with tracking UIDs
    derived from the SEG's SOP Instance UID and the label.

    Raises NothingSegmentedError when no segment has a voxel."""
    counts = _label_counts(result.label_map, max((s.label for s in result.segments), default=0))
    ordered = sorted(result.segments, key=lambda segment: segment.label)
    kept = [segment for segment in ordered if counts[segment.label] > 0]
    omitted = [segment.name for segment in ordered if counts[segment.label] == 0]
    if not kept:
        raise NothingSegmentedError("no segment has a labelled voxel; there is no SEG to write")
    if omitted:
        logger.info("empty segments left out of the SEG and SR: %s", ", ".join(omitted))
    return tuple(
        WrittenSegment(
            segment, number, derived_uid(segmentation_instance_uid, "segment", str(segment.label))
        )
        for number, segment in enumerate(kept, start=1)
    )


def create_segmentation(
    sources: Sequence[SourceImage],
    label_map: npt.NDArray[np.integer],
    written: Sequence[WrittenSegment],
    algorithm: AlgorithmInfo,
    options: WriterOptions,
    uids: ResultUids,
) -> hd.seg.Segmentation:
    """A BINARY SEG holding each written segment's non-empty frames (PS3.3 C.8.20). Sources
    that repeat their planes (a cine's phases) are written in layers (`seg_writer.layers`)."""
    layers = source_layers(sources)
    layer_of_segment: dict[int, int] = {}
    if layers is None:
        arranged = arrange_sources(sources, label_map)
        pixel_array: npt.NDArray[np.generic] = _numbered(arranged.pixel_array, written)
    else:
        masks, layer_of = layered_masks(label_map, [w.segment.label for w in written], layers)
        layer_of_segment = {
            item.segment_number: layer for item, layer in zip(written, layer_of, strict=True)
        }
        first = [sources[index] for index in layers.layers[0]]
        planes: npt.NDArray[np.integer] = np.any(masks, axis=-1).astype(np.uint8)
        arranged = arrange_sources(first, planes)
        labelled = np.flatnonzero(masks.any(axis=(1, 2, 3)))
        pixel_array = masks[labelled].astype(np.uint8)
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name,
        family=coded(algorithm.family),
        version=algorithm.version,
        source=options.manufacturer,
    )
    try:
        with patient_name_copied_verbatim():
            segmentation = hd.seg.Segmentation(
                source_images=arranged.source_images,
                pixel_array=pixel_array,
                segmentation_type=hd.seg.SegmentationTypeValues(options.encoding.value),
                segment_descriptions=[_describe(item, identification) for item in written],
                series_instance_uid=uids.segmentation_series,
                series_number=options.seg_series_number,
                sop_instance_uid=uids.segmentation_instance,
                instance_number=1,
                manufacturer=options.manufacturer,
                manufacturer_model_name=options.manufacturer_model_name,
                software_versions=options.software_versions,
                device_serial_number=options.device_serial_number,
                plane_positions=arranged.plane_positions,
                omit_empty_frames=True,
                content_label=_content_label(algorithm.name),
                content_description=f"{algorithm.name} {algorithm.version}"[:64],
                series_description=options.seg_series_description,
                institution_name=options.institution_name,
            )
    except (ValueError, AttributeError) as exc:  # inputs highdicom cannot encode, or lacks
        raise WriterInputError(f"highdicom cannot build the SEG: {exc}") from exc
    if layers is not None:
        fix_layer_references(segmentation, sources, layers, layer_of_segment)
    if pixel_array.shape[0] == 1:
        _drop_single_plane_spacing(segmentation, arranged.source_images[0])
    return segmentation


def _describe(
    item: WrittenSegment, identification: hd.AlgorithmIdentificationSequence
) -> hd.seg.SegmentDescription:
    segment = item.segment
    region = segment.anatomic_region
    description = hd.seg.SegmentDescription(
        segment_number=item.segment_number,
        segment_label=segment.description,
        segmented_property_category=coded(segment.category),
        segmented_property_type=coded(segment.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=identification,
        tracking_uid=item.tracking_uid,
        tracking_id=segment.description,
        anatomic_regions=None if region is None else [coded(region)],
        display_color=hd.color.CIELabColor.from_rgb(*segment.color),
    )
    if segment.laterality is not None:
        # PS3.3 C.8.20.2: the type's modifier (CID 244 Laterality for a paired structure);
        # highdicom's SegmentDescription has no parameter for it.
        description.SegmentedPropertyTypeModifierCodeSequence = [coded(segment.laterality)]
    return description


def _drop_single_plane_spacing(segmentation: hd.seg.Segmentation, source: Dataset) -> None:
    """highdicom counts one plane as a volume with slice spacing 1.0 and writes that as
    SpacingBetweenSlices when the source states none. One plane has no spacing, so that
    invented value is removed (Type 3 in the Pixel Measures Macro, PS3.3 C.7.6.16.2.1)."""
    stated = source.get("SpacingBetweenSlices") or any(
        "SpacingBetweenSlices" in measures
        for group in source.get("SharedFunctionalGroupsSequence", [])
        for measures in group.get("PixelMeasuresSequence", [])
    )
    if stated:
        return
    for group in segmentation.SharedFunctionalGroupsSequence:
        for measures in group.get("PixelMeasuresSequence", []):
            if "SpacingBetweenSlices" in measures:
                del measures.SpacingBetweenSlices


def _label_counts(label_map: npt.NDArray[np.integer], max_label: int) -> npt.NDArray[np.int64]:
    counts = np.zeros(max_label + 1, dtype=np.int64)
    for start in range(0, label_map.shape[0], _SLICES_PER_CHUNK):
        chunk = label_map[start : start + _SLICES_PER_CHUNK].ravel()
        counts += np.bincount(chunk, minlength=max_label + 1)[: max_label + 1]
    return counts


def _numbered(
    label_map: npt.NDArray[np.integer], written: Sequence[WrittenSegment]
) -> npt.NDArray[np.unsignedinteger]:
    """The label map with each written segment's label replaced by its segment number, in the
    smallest unsigned type highdicom accepts (uint8 or uint16)."""
    dtype = np.uint8 if len(written) < 2**8 else np.uint16
    if all(item.segment.label == item.segment_number for item in written):
        # Labels already are 1..n, and every voxel holds one of them or 0 (PipelineResult).
        return label_map.astype(dtype, copy=False)
    lookup = np.zeros(max(item.segment.label for item in written) + 1, dtype=dtype)
    for item in written:
        lookup[item.segment.label] = item.segment_number
    numbered = np.empty(label_map.shape, dtype=dtype)
    for start in range(0, label_map.shape[0], _SLICES_PER_CHUNK):
        stop = start + _SLICES_PER_CHUNK
        numbered[start:stop] = lookup[label_map[start:stop]]
    return numbered


def _content_label(name: str) -> str:
    """ContentLabel is a CS of at most 16 characters: upper case, digits, space, underscore."""
    return re.sub(r"[^A-Z0-9_ ]", "_", name.upper())[:16].strip() or "SEGMENTATION"
