"""Label maps from files: DICOM SEG, NIfTI (and other SimpleITK formats), numpy arrays.

Every reader returns a `LabelImage`: one or more label layers on one grid (patient space, see
`dicom_node.evaluation.grid`) and a description of the label values.

- DICOM SEG (PS3.3 A.51; BINARY, FRACTIONAL or LABELMAP), read with highdicom. Label values are
  the Segment Numbers; a segment is named by its SegmentLabel and coded by its Segmented
  Property Type (with its modifier, e.g. laterality; PS3.3 C.8.20.2). The grid is highdicom's
  volume of the SEG's frames (`Segmentation.get_volume`): a regular grid from the first to the
  last plane that has a frame, empty planes in between filled with zeros. FRACTIONAL segments
  are thresholded at 0.5. Overlapping segments (allowed in BINARY SEG) are spread over as few
  layers as needed so that each layer holds non-overlapping segments; no voxel is dropped.
- NIfTI / NRRD / MetaImage through SimpleITK, whose geometry is already in LPS. Values must
  be whole non-negative numbers.
- `.npy`: a 3D array of whole non-negative numbers without geometry; it is taken to lie on
  the other input's grid.

Names for NIfTI and npy values come from a label-name JSON file (`read_label_names`); a name
that is in the node's code table (`pipelines.codes`) also brings that entry's SegmentLabel and
codes, so that it matches the same structure in a SEG the node wrote.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import highdicom as hd
import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from dicom_node.evaluation.errors import GridMismatchError, UnreadableInputError
from dicom_node.evaluation.grid import Grid, LabelArray
from pipelines.codes import SEGMENT_CODES, segment_for

__all__ = [
    "ITK_SUFFIXES",
    "CodeKey",
    "InputKind",
    "LabelImage",
    "SegmentInfo",
    "input_kind",
    "normalized_name",
    "read_label_image",
    "read_label_names",
]

logger = logging.getLogger(__name__)

ITK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
FRACTIONAL_THRESHOLD = 0.5

# (coding scheme, code value) of the segmented property type, plus the modifier's when given.
CodeKey = tuple[str, str, str | None]
InputKind = Literal["seg", "itk", "numpy"]


@dataclass(frozen=True)
class SegmentInfo:
    """What a label value stands for, as far as the file says."""

    name: str
    aliases: tuple[str, ...] = ()  # other names of the same structure (SegmentLabel, ...)
    code: CodeKey | None = None


@dataclass(frozen=True, eq=False)
class LabelImage:
    """Label layers on one grid. A voxel may hold a value in more than one layer only where
    the file's segments overlap; usually there is one layer."""

    layers: tuple[LabelArray, ...]
    grid: Grid | None  # None: no geometry (a numpy array)
    segments: Mapping[int, SegmentInfo] = field(default_factory=dict)
    frame_of_reference_uid: str | None = None
    kind: str = ""  # "DICOM SEG", "NIfTI", "numpy", ... for messages

    @property
    def shape(self) -> tuple[int, int, int]:
        depth, rows, columns = self.layers[0].shape
        return depth, rows, columns

    def values(self) -> set[int]:
        """The non-zero label values that have at least one voxel."""
        present: set[int] = set()
        for layer in self.layers:
            present.update(int(value) for value in np.unique(layer) if value != 0)
        return present


def normalized_name(name: str) -> str:
    """Lower case, runs of anything but letters and digits as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def input_kind(path: Path) -> InputKind:
    """What kind of label file `path` is, by its name (or, for DICOM, its PS3.10 header)."""
    if not path.is_file():
        raise UnreadableInputError(f"{path}: no such file")
    lowered = path.name.lower()
    if lowered.endswith(ITK_SUFFIXES):
        return "itk"
    if lowered.endswith(".npy"):
        return "numpy"
    if lowered.endswith(".dcm") or _is_dicom(path):
        return "seg"
    raise UnreadableInputError(
        f"{path}: not a DICOM file, an image SimpleITK reads ({', '.join(ITK_SUFFIXES)}) "
        "or a .npy label map"
    )


def read_label_image(path: Path, names: Mapping[int, str] | None = None) -> LabelImage:
    """The label map in `path`; `names` (value -> name) for files that carry no names
    (NIfTI, npy): a SEG names its own segments."""
    kind = input_kind(path)
    if kind == "seg":
        if names is not None:
            raise UnreadableInputError(f"{path}: a DICOM SEG names its own segments")
        return _read_seg(path)
    image = _read_itk(path) if kind == "itk" else _read_numpy(path)
    return image if names is None else _with_names(image, names)


def read_label_names(path: Path) -> dict[int, str]:
    """Label names from JSON: either value -> name (``{"1": "liver"}``) or name -> value
    (``{"liver": 1}``, as in nnU-Net's dataset.json, whose ``labels`` object is used when the
    file has one). Value 0 (background) is left out."""
    try:
        content: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableInputError(f"{path}: cannot read label names: {exc}") from exc
    if isinstance(content, dict) and isinstance(content.get("labels"), dict):
        content = content["labels"]
    if not isinstance(content, dict) or not content:
        raise UnreadableInputError(f"{path}: label names must be a JSON object value -> name")
    names: dict[int, str] = {}
    for key, item in content.items():
        if isinstance(item, str) and _is_whole(key):
            value, name = int(key), item
        elif isinstance(item, int) and not isinstance(item, bool):
            value, name = item, str(key)
        else:
            raise UnreadableInputError(
                f"{path}: entry {key!r}: {item!r} is neither value -> name nor name -> value"
            )
        if value < 0:
            raise UnreadableInputError(f"{path}: label value {value} is negative")
        if value != 0:
            names[value] = name
    return names


# --- SimpleITK and numpy ---------------------------------------------------------------------


def _read_itk(path: Path) -> LabelImage:
    try:
        image: Any = sitk.ReadImage(str(path))  # SimpleITK has no type hints
    except RuntimeError as exc:
        raise UnreadableInputError(f"{path}: SimpleITK cannot read it: {_last_line(exc)}") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise UnreadableInputError(f"{path}: a label map is a 3D image of one component")
    # ITK's axes (x, y, z) are numpy's (column, row, slice); its geometry is LPS already.
    matrix = np.reshape(np.array(image.GetDirection(), dtype=np.float64), (3, 3))
    spacing = image.GetSpacing()
    columns, rows, depth = (int(size) for size in image.GetSize())
    grid = Grid(
        (depth, rows, columns),
        _triple(image.GetOrigin()),
        (float(spacing[2]), float(spacing[1]), float(spacing[0])),
        (_triple(matrix[:, 2]), _triple(matrix[:, 1]), _triple(matrix[:, 0])),
    )
    return LabelImage((_as_labels(sitk.GetArrayFromImage(image), path),), grid, kind="NIfTI")


def _read_numpy(path: Path) -> LabelImage:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UnreadableInputError(f"{path}: not a numpy array file: {exc}") from exc
    if array.ndim != 3:
        raise UnreadableInputError(f"{path}: a label map has 3 dimensions (got {array.ndim})")
    return LabelImage((_as_labels(array, path),), None, kind="numpy")


def _as_labels(array: npt.NDArray[Any], path: Path) -> LabelArray:
    """The array as the smallest unsigned integer type, if all values are whole and >= 0."""
    if array.size == 0:
        raise UnreadableInputError(f"{path}: the label map is empty")
    if array.dtype.kind not in "uifb":
        raise UnreadableInputError(f"{path}: values of type {array.dtype} are not labels")
    low, high = array.min(), array.max()
    if low < 0 or (array.dtype.kind == "f" and not np.array_equal(array, np.round(array))):
        raise UnreadableInputError(f"{path}: a label map holds whole numbers >= 0")
    dtype = np.uint8 if high < 2**8 else np.uint16 if high < 2**16 else np.uint32
    labels: LabelArray = array.astype(dtype, copy=False)
    return labels


def _with_names(image: LabelImage, names: Mapping[int, str]) -> LabelImage:
    return LabelImage(
        image.layers,
        image.grid,
        {value: _describe(name) for value, name in names.items()},
        image.frame_of_reference_uid,
        image.kind,
    )


def _describe(name: str) -> SegmentInfo:
    """A label-map name, with the SegmentLabel and codes the node writes for it if curated."""
    if name not in SEGMENT_CODES:
        return SegmentInfo(name)
    segment = segment_for(name, 1)
    # The writer puts the laterality in SegmentedPropertyTypeModifierCodeSequence (C.8.20.2).
    modifier = None if segment.laterality is None else segment.laterality.value
    return SegmentInfo(
        name,
        (segment.description,),
        (segment.type.scheme_designator, segment.type.value, modifier),
    )


# --- DICOM SEG -------------------------------------------------------------------------------


def _read_seg(path: Path) -> LabelImage:
    try:
        with warnings.catch_warnings():
            # highdicom warns about deviations in files written by others; they do not change
            # the pixels or the geometry this reads.
            warnings.simplefilter("ignore", UserWarning)
            segmentation = hd.seg.segread(path)
            return _seg_label_image(segmentation, path)
    except (GridMismatchError, UnreadableInputError):
        raise
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UnreadableInputError(f"{path}: not a readable DICOM SEG: {_last_line(exc)}") from exc


def _seg_label_image(segmentation: hd.seg.Segmentation, path: Path) -> LabelImage:
    segments = {
        int(item.segment_number): _seg_segment(item)
        for item in segmentation.SegmentSequence
        if int(item.segment_number) != 0  # LABELMAP SEG's background segment
    }
    numbers = sorted(segments)
    if not numbers:
        raise UnreadableInputError(f"{path}: the SEG has no segments")
    fractional = segmentation.SegmentationType == "FRACTIONAL"
    combined = None if fractional else _combined(segmentation, path)
    if combined is None:
        volume, layers = _segment_by_segment(segmentation, numbers, fractional, path)
    else:
        volume, layers = combined, (_unsigned(combined.array),)
    grid = Grid.from_affine(_shape(volume.array.shape), volume.affine)
    uid = str(segmentation.FrameOfReferenceUID) if "FrameOfReferenceUID" in segmentation else None
    logger.debug(
        "%s: SEG with %d segments on %s, %d layer(s)", path, len(numbers), grid.shape, len(layers)
    )
    return LabelImage(layers, grid, segments, uid, "DICOM SEG")


def _combined(segmentation: hd.seg.Segmentation, path: Path) -> hd.Volume | None:
    """All segments in one label volume; None when they overlap."""
    try:
        return segmentation.get_volume(combine_segments=True)
    except RuntimeError as exc:
        if "overlap" in str(exc):
            return None
        raise GridMismatchError(f"{path}: SEG frames do not form one grid: {exc}") from exc


def _segment_by_segment(
    segmentation: hd.seg.Segmentation, numbers: list[int], fractional: bool, path: Path
) -> tuple[hd.Volume, tuple[LabelArray, ...]]:
    """Each segment read alone and placed in the first layer where it overlaps nothing."""
    layers: list[LabelArray] = []
    first: hd.Volume | None = None
    for number in numbers:
        try:
            volume = segmentation.get_volume(segment_numbers=[number], combine_segments=False)
        except (RuntimeError, ValueError) as exc:
            raise GridMismatchError(f"{path}: SEG frames do not form one grid: {exc}") from exc
        if first is None:
            first = volume
        elif volume.array.shape != first.array.shape or not np.allclose(
            volume.affine, first.affine
        ):
            raise GridMismatchError(
                f"{path}: segment {number} is on another grid than segment {numbers[0]}"
            )
        values = volume.array[..., 0]
        mask = values >= FRACTIONAL_THRESHOLD if fractional else values > 0
        dtype = np.uint8 if numbers[-1] < 2**8 else np.uint16
        for layer in layers:
            if not np.any(layer[mask]):
                layer[mask] = number
                break
        else:
            layer = np.zeros(mask.shape, dtype=dtype)
            layer[mask] = number
            layers.append(layer)
    if first is None:
        raise UnreadableInputError(f"{path}: the SEG has no segments")
    if len(layers) > 1:
        logger.info("%s: overlapping segments, kept in %d layers", path, len(layers))
    return first, tuple(layers) or (np.zeros(first.array.shape[:3], dtype=np.uint8),)


def _seg_segment(item: hd.seg.SegmentDescription) -> SegmentInfo:
    kind = item.segmented_property_type
    modifiers = item.get("SegmentedPropertyTypeModifierCodeSequence", [])
    modifier = str(modifiers[0].CodeValue) if modifiers else None
    tracking = str(item.get("TrackingID", "") or "")
    aliases = (tracking,) if tracking and tracking != item.segment_label else ()
    return SegmentInfo(
        str(item.segment_label), aliases, (str(kind.scheme_designator), str(kind.value), modifier)
    )


def _unsigned(array: npt.NDArray[Any]) -> LabelArray:
    labels: LabelArray = array.astype(
        np.uint16 if array.max(initial=0) >= 2**8 else np.uint8, copy=False
    )
    return labels


def _shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return int(shape[0]), int(shape[1]), int(shape[2])


def _is_dicom(path: Path) -> bool:
    """PS3.10 7.1: a 128-byte preamble, then "DICM"."""
    try:
        with path.open("rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _is_whole(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _triple(values: Any) -> tuple[float, float, float]:
    x, y, z = (float(value) for value in values)
    return x, y, z


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
