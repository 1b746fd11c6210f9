"""Volume assembly: the files of one series become one image volume, or a named refusal.

Single-frame CT/MR (PS3.3 C.7.6.2 Image Plane) and Enhanced multi-frame instances (per-frame
functional groups, PS3.3 C.7.6.16, with the shared groups as fallback) give one plane per
frame; `geometry.stack_planes` sorts and checks them; `pixels.read_frames` decodes the frames
into the volume with the Modality LUT rescale applied. Every refusal is a VolumeAssemblyError
whose reason is an `AssemblyRejection`; the rules, tolerances and what is trusted are in
docs/ASSEMBLY.md.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID, AllTransferSyntaxes

from dicom_node.errors import VolumeAssemblyError
from dicom_node.series.geometry import AssemblyRejection, FramePlane, stack_planes
from dicom_node.series.pixels import (
    CorruptPixelDataError,
    FrameLocation,
    MissingPixelDataError,
    PixelLayout,
    UnsupportedPixelDataError,
    available_cpus,
    locate_frames,
    read_frames,
)
from pipelines.volume import ImageVolume

__all__ = [
    "AssembledSeries",
    "AssemblyRejection",
    "SourceFrame",
    "assemble_series",
    "decode_frames",
    "read_instances",
]

logger = logging.getLogger(__name__)

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


@dataclass(frozen=True)
class SourceFrame:
    """One slice of the volume, in array order."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    frame_number: int | None  # 1-based frame of a multi-frame instance; None for single-frame


@dataclass(frozen=True, eq=False)
class AssembledSeries:
    volume: ImageVolume  # array[slice, row, column] float32, rescale applied (CT: HU)
    frames: tuple[SourceFrame, ...]  # frames[k] is the source of slice k
    headers: Mapping[str, Dataset]  # SOP Instance UID -> header without pixel data


def assemble_series(paths: Sequence[Path], *, decode_workers: int | None = None) -> AssembledSeries:
    """Read, check, sort and decode the instances of one series into one volume.

    The order of `paths` does not matter: slices are sorted along the slice normal. A single
    slice takes its slice spacing from Spacing Between Slices, else Slice Thickness.
    `decode_workers` is how many threads (uncompressed) or processes (compressed) decode
    pixel data; by default, as many as this process may use CPUs.
    Raises VolumeAssemblyError with an AssemblyRejection reason for any series that is not one
    regular grid of supported pixel data.
    """
    workers = available_cpus() if decode_workers is None else decode_workers
    if workers < 1:
        raise ValueError(f"decode_workers must be at least 1 (got {decode_workers})")
    instances = read_instances(paths)
    frames = [frame for instance in instances for frame in instance.frames]
    geometry = stack_planes(
        [frame.plane for frame in frames], single_slice_spacing=frames[0].single_slice_spacing
    )
    ordered = [frames[index] for index in geometry.order]
    array = decode_frames(ordered, workers)

    repaired = sum(instance.repaired_uids for instance in instances)
    if repaired:
        logger.warning(
            "%d instance(s) had an empty SOP Instance/Class UID; used the file meta's", repaired
        )
    volume = ImageVolume(
        array, geometry.origin, geometry.spacing, geometry.direction, instances[0].modality
    )
    return AssembledSeries(
        volume=volume,
        frames=tuple(frame.source for frame in ordered),
        headers=MappingProxyType({instance.source_uid: instance.header for instance in instances}),
    )


def decode_frames(frames: Sequence[_Frame], workers: int) -> np.ndarray:
    """The frames' pixel data, rescaled, as one float32 array ``(frames, rows, columns)``;
    unreadable pixel data raises VolumeAssemblyError with its reason."""
    first = frames[0].plane
    array = np.empty((len(frames), first.rows, first.columns), np.float32)
    try:
        read_frames(
            [frame.location for frame in frames],
            [frame.rescale for frame in frames],
            array,
            workers=workers,
        )
    except UnsupportedPixelDataError as exc:
        raise VolumeAssemblyError(AssemblyRejection.UNSUPPORTED_PIXEL_DATA, str(exc)) from exc
    except CorruptPixelDataError as exc:
        raise VolumeAssemblyError(AssemblyRejection.CORRUPT_PIXEL_DATA, str(exc)) from exc
    return array


def read_instances(paths: Sequence[Path]) -> list[_Instance]:
    """The headers and frame geometry of one series' files, checked to belong together (no
    duplicate instance, one Frame of Reference, one modality); pixel data not decoded."""
    if not paths:
        raise VolumeAssemblyError(AssemblyRejection.NO_IMAGES, "the series has no files")
    instances = [_read_instance(Path(path)) for path in paths]
    _check_instances(instances)
    return instances


@dataclass(frozen=True)
class _Frame:
    source: SourceFrame
    plane: FramePlane
    location: FrameLocation
    rescale: tuple[float, float]  # (RescaleSlope, RescaleIntercept)
    single_slice_spacing: float | None


@dataclass(frozen=True)
class _Instance:
    path: Path
    header: Dataset
    source_uid: str
    modality: str
    frame_of_reference_uid: str
    frames: tuple[_Frame, ...]
    repaired_uids: bool


def _read_instance(path: Path) -> _Instance:
    try:
        with open(path, "rb") as fp:
            return _instance(path, _read_header(fp), fp)
    except (OSError, EOFError, struct.error, InvalidDicomError) as exc:
        raise VolumeAssemblyError(
            AssemblyRejection.UNREADABLE_FILE, f"{path.name}: {exc.__class__.__name__}: {exc}"
        ) from exc
    except MissingPixelDataError as exc:
        raise VolumeAssemblyError(AssemblyRejection.NOT_AN_IMAGE, str(exc)) from exc
    except UnsupportedPixelDataError as exc:
        raise VolumeAssemblyError(AssemblyRejection.UNSUPPORTED_PIXEL_DATA, str(exc)) from exc
    except CorruptPixelDataError as exc:
        raise VolumeAssemblyError(AssemblyRejection.CORRUPT_PIXEL_DATA, str(exc)) from exc


def _read_header(fp: BinaryIO) -> Dataset:
    """The dataset up to its pixel data, with its file meta, leaving `fp` at the pixel data.

    A Part 10 file (PS3.10 7.1: preamble, "DICM", File Meta group, dataset) in a little-endian
    transfer syntax is read with pydicom's `read_dataset`, skipping the per-file work of
    `dcmread` that this needs not (a third of the header time of a large series); anything
    else (deflate, big endian, no preamble) goes through `dcmread`.
    """
    if fp.read(132)[128:] == b"DICM":
        meta = FileMetaDataset(
            read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=_past_meta)
        )
        syntax = UID(str(meta.get("TransferSyntaxUID", "")))
        if syntax in AllTransferSyntaxes and syntax.is_little_endian and not syntax.is_deflated:
            header = read_dataset(
                fp,
                is_implicit_VR=syntax.is_implicit_VR,
                is_little_endian=True,
                stop_when=_at_pixel_data,
            )
            header.file_meta = meta
            return header
    fp.seek(0)
    return pydicom.dcmread(fp, stop_before_pixels=True)


def _past_meta(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag.group != 0x0002


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_DATA_TAGS  # Pixel Data, Float and Double Float Pixel Data


def _instance(path: Path, header: Dataset, fp: BinaryIO) -> _Instance:
    meta = header.file_meta
    sop_instance_uid = _text(header, "SOPInstanceUID")
    sop_class_uid = _text(header, "SOPClassUID")
    repaired = False
    if not sop_instance_uid or not sop_class_uid:
        # Some anonymisers blank the dataset's UIDs and keep the file meta's, which PS3.10
        # 7.1 requires to be the same values: take those (documented in docs/ASSEMBLY.md).
        sop_instance_uid = sop_instance_uid or str(meta.get("MediaStorageSOPInstanceUID", ""))
        sop_class_uid = sop_class_uid or str(meta.get("MediaStorageSOPClassUID", ""))
        if not sop_instance_uid:
            raise VolumeAssemblyError(
                AssemblyRejection.MISSING_UID,
                f"{path.name} has no SOP Instance UID (neither in the dataset nor its file meta)",
            )
        header.SOPInstanceUID, header.SOPClassUID = sop_instance_uid, sop_class_uid
        repaired = True
    if "Rows" not in header or "Columns" not in header:
        raise VolumeAssemblyError(
            AssemblyRejection.NOT_AN_IMAGE, f"{path.name} has no Rows/Columns: not an image"
        )

    layout = _pixel_layout(header, path)
    number_of_frames = _integer(header, "NumberOfFrames", path.name, default=1)
    if number_of_frames < 1:
        raise VolumeAssemblyError(
            AssemblyRejection.NOT_AN_IMAGE, f"{path.name}: Number of Frames {number_of_frames}"
        )
    locations = locate_frames(
        fp,
        path=path,
        layout=layout,
        number_of_frames=number_of_frames,
        extended_offsets=header.get("ExtendedOffsetTable"),
    )
    multi_frame = "NumberOfFrames" in header
    frames = tuple(
        _Frame(
            source=SourceFrame(
                path, sop_instance_uid, sop_class_uid, i + 1 if multi_frame else None
            ),
            plane=plane,
            location=location,
            rescale=rescale,
            single_slice_spacing=spacing,
        )
        for i, (location, (plane, rescale, spacing)) in enumerate(
            zip(locations, _frame_geometry(header, path, layout, number_of_frames), strict=True)
        )
    )
    return _Instance(
        path=path,
        header=header,
        source_uid=sop_instance_uid,
        modality=_text(header, "Modality"),
        frame_of_reference_uid=_text(header, "FrameOfReferenceUID"),
        frames=frames,
        repaired_uids=repaired,
    )


def _pixel_layout(header: Dataset, path: Path) -> PixelLayout:
    samples = _integer(header, "SamplesPerPixel", path.name, default=1)
    photometric = _text(header, "PhotometricInterpretation")
    if samples != 1 or photometric not in _MONOCHROME:
        raise VolumeAssemblyError(
            AssemblyRejection.UNSUPPORTED_PIXEL_DATA,
            f"{path.name}: {samples} sample(s) per pixel, Photometric Interpretation "
            f"{photometric or '(none)'}; only greyscale (MONOCHROME1/2) images are read",
        )
    if "ModalityLUTSequence" in header:
        raise VolumeAssemblyError(
            AssemblyRejection.UNSUPPORTED_PIXEL_DATA,
            f"{path.name}: a Modality LUT Sequence (only rescale slope/intercept is applied)",
        )
    bits_allocated = _integer(header, "BitsAllocated", path.name)
    return PixelLayout(
        rows=_integer(header, "Rows", path.name),
        columns=_integer(header, "Columns", path.name),
        bits_allocated=bits_allocated,
        bits_stored=_integer(header, "BitsStored", path.name, default=bits_allocated),
        signed=_integer(header, "PixelRepresentation", path.name, default=0) == 1,
        transfer_syntax_uid=str(header.file_meta.get("TransferSyntaxUID", "")),
    )


def _frame_geometry(
    header: Dataset, path: Path, layout: PixelLayout, number_of_frames: int
) -> list[tuple[FramePlane, tuple[float, float], float | None]]:
    """Plane, rescale and single-slice spacing of each frame: from the top level for a
    single-frame image; from each frame's functional groups, else the shared ones, for a
    multi-frame image (PS3.3 C.7.6.16)."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    shared_items = header.get("SharedFunctionalGroupsSequence")
    shared = shared_items[0] if shared_items else None
    if per_frame is None and shared is None:
        if number_of_frames > 1:
            raise VolumeAssemblyError(
                AssemblyRejection.MISSING_GEOMETRY,
                f"{path.name} has {number_of_frames} frames and no per-frame functional groups, "
                "so where each frame lies is unknown (frame positions are not guessed)",
            )
        return [_single_frame(header, path.name, layout)]
    if per_frame is not None and len(per_frame) != number_of_frames:
        raise VolumeAssemblyError(
            AssemblyRejection.MISSING_GEOMETRY,
            f"{path.name} has {len(per_frame)} per-frame functional group items for "
            f"{number_of_frames} frames",
        )
    results = []
    for i in range(number_of_frames):
        label = f"{path.name} frame {i + 1}" if number_of_frames > 1 else path.name
        sources = [item for item in (per_frame[i] if per_frame else None, shared) if item]
        position = _first_item(sources, "PlanePositionSequence")
        orientation = _first_item(sources, "PlaneOrientationSequence")
        measures = _first_item(sources, "PixelMeasuresSequence")
        transform = _first_item(sources, "PixelValueTransformationSequence")
        if position is None or orientation is None or measures is None:
            missing = [
                name
                for name, group in (
                    ("Plane Position", position),
                    ("Plane Orientation", orientation),
                    ("Pixel Measures", measures),
                )
                if group is None
            ]
            raise VolumeAssemblyError(
                AssemblyRejection.MISSING_GEOMETRY,
                f"{label} has no {' / '.join(missing)} Sequence, per-frame or shared",
            )
        plane = _plane(label, layout, position=position, orientation=orientation, measures=measures)
        rescale = _rescale(transform if transform is not None else header, label)
        results.append((plane, rescale, _slice_spacing(measures, label)))
    return results


def _single_frame(
    header: Dataset, label: str, layout: PixelLayout
) -> tuple[FramePlane, tuple[float, float], float | None]:
    plane = _plane(label, layout, position=header, orientation=header, measures=header)
    return plane, _rescale(header, label), _slice_spacing(header, label)


def _plane(
    label: str, layout: PixelLayout, *, position: Dataset, orientation: Dataset, measures: Dataset
) -> FramePlane:
    image_position = _numbers(position, "ImagePositionPatient", 3, label)
    image_orientation = _numbers(orientation, "ImageOrientationPatient", 6, label)
    pixel_spacing = _numbers(measures, "PixelSpacing", 2, label)
    missing = [
        keyword
        for keyword, value in (
            ("Image Position (Patient)", image_position),
            ("Image Orientation (Patient)", image_orientation),
            ("Pixel Spacing", pixel_spacing),
        )
        if value is None
    ]
    if missing or image_position is None or image_orientation is None or pixel_spacing is None:
        raise VolumeAssemblyError(
            AssemblyRejection.MISSING_GEOMETRY, f"{label} has no {', '.join(missing)}"
        )
    return FramePlane(
        label=label,
        position=(image_position[0], image_position[1], image_position[2]),
        orientation=(
            image_orientation[0],
            image_orientation[1],
            image_orientation[2],
            image_orientation[3],
            image_orientation[4],
            image_orientation[5],
        ),
        pixel_spacing=(pixel_spacing[0], pixel_spacing[1]),
        rows=layout.rows,
        columns=layout.columns,
    )


def _rescale(item: Dataset, label: str) -> tuple[float, float]:
    """(slope, intercept) of the Modality LUT (PS3.3 C.11.1); identity when absent (MR)."""
    slope = _numbers(item, "RescaleSlope", 1, label)
    intercept = _numbers(item, "RescaleIntercept", 1, label)
    return (slope[0] if slope else 1.0), (intercept[0] if intercept else 0.0)


def _slice_spacing(item: Dataset, label: str) -> float | None:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _numbers(item, keyword, 1, label)
        if value and value[0] > 0:
            return value[0]
    return None


def _first_item(sources: list[Dataset], keyword: str) -> Dataset | None:
    for source in sources:
        sequence = source.get(keyword)
        if sequence:
            item: Dataset = sequence[0]
            return item
    return None


def _numbers(item: Dataset, keyword: str, count: int, label: str) -> tuple[float, ...] | None:
    """The `count` numbers of a DS/IS attribute, None when absent or empty."""
    element = item.get_item(keyword)
    if element is None:
        return None
    value = element.value
    try:
        if isinstance(value, bytes):
            # Still raw: parse the text (PS3.5 6.2: DS/IS are ASCII, backslash-separated)
            # rather than have pydicom build and validate a DSfloat for each value (half of
            # the header time of a large series).
            text = value.decode("ascii").strip(" \x00")
            numbers = tuple(float(part) for part in text.split("\\")) if text else ()
        elif isinstance(value, MultiValue | list | tuple):
            numbers = tuple(float(number) for number in value)
        else:
            numbers = () if value is None or value == "" else (float(value),)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise VolumeAssemblyError(
            AssemblyRejection.INVALID_GEOMETRY, f"{label}: {keyword} is not numeric"
        ) from exc
    if not numbers:
        return None
    if len(numbers) != count or not all(isfinite(number) for number in numbers):
        raise VolumeAssemblyError(
            AssemblyRejection.INVALID_GEOMETRY,
            f"{label}: {keyword} has {len(numbers)} value(s), {count} finite expected",
        )
    return numbers


def _integer(header: Dataset, keyword: str, label: str, *, default: int | None = None) -> int:
    """A US (binary) or IS (text) attribute of the top level."""
    element = header.get_item(keyword)
    value = None if element is None else element.value
    try:
        if isinstance(value, bytes):
            # Still raw, as _numbers: decode here rather than through pydicom's converters.
            vr = element.VR if element is not None and element.VR else dictionary_VR(keyword)
            if vr == "US" and len(value) == 2:
                little = header.original_encoding[1] is not False
                value = int.from_bytes(value, "little" if little else "big")
            else:
                value = value.decode("ascii").strip(" \x00") or None
        if value is None or value == "":
            if default is None:
                raise VolumeAssemblyError(
                    AssemblyRejection.UNSUPPORTED_PIXEL_DATA, f"{label} has no {keyword}"
                )
            return default
        return int(value)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise VolumeAssemblyError(
            AssemblyRejection.UNSUPPORTED_PIXEL_DATA, f"{label}: {keyword} is not an integer"
        ) from exc


def _text(item: Dataset, keyword: str) -> str:
    """A single-valued text attribute (UI, CS), "" when absent."""
    element = item.get_item(keyword)
    if element is None or element.value is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace").strip(" \x00")
    return str(value).strip()


def _check_instances(instances: Sequence[_Instance]) -> None:
    seen: dict[str, _Instance] = {}
    for instance in instances:
        earlier = seen.setdefault(instance.source_uid, instance)
        if earlier is not instance:
            where = (
                f"{instance.path.name} is listed twice"
                if earlier.path == instance.path
                else f"{earlier.path.name} and {instance.path.name} hold the same SOP Instance UID"
            )
            raise VolumeAssemblyError(AssemblyRejection.DUPLICATE_INSTANCE, where)
    first = instances[0]
    for instance in instances[1:]:
        if instance.frame_of_reference_uid != first.frame_of_reference_uid:
            raise VolumeAssemblyError(
                AssemblyRejection.MIXED_FRAME_OF_REFERENCE,
                f"{instance.path.name} has Frame of Reference UID "
                f"{instance.frame_of_reference_uid or '(none)'} but {first.path.name} has "
                f"{first.frame_of_reference_uid or '(none)'}",
            )
        if instance.modality != first.modality:
            raise VolumeAssemblyError(
                AssemblyRejection.MIXED_MODALITY,
                f"{instance.path.name} is {instance.modality or '(no modality)'} but "
                f"{first.path.name} is {first.modality or '(no modality)'}",
            )
