"""Stack geometry: the planes of many frames checked and laid out as one regular grid.

Each frame has a plane in patient space (PS3.3 C.7.6.2.1.1): Image Position (Patient), the
centre of its first pixel; Image Orientation (Patient), the row and column direction cosines;
and Pixel Spacing, the distance between rows and between columns. A stack is one grid when every
frame has the same orientation, size and pixel spacing, and the positions lie on one line along
the slice normal (row cosine x column cosine), one regular step apart. Anything else is refused
with a named reason (`AssemblyRejection`); nothing here resamples, drops or invents a slice.

Tolerances (docs/ASSEMBLY.md says why these numbers):
- direction cosines agree within `ORIENTATION_TOLERANCE` (1e-3, about 0.06 degrees);
- positions closer than `POSITION_TOLERANCE_MM` (0.01 mm) along the normal are the same place;
- a step is regular within 0.01 mm + `SPACING_TOLERANCE` (1 %) of the nominal spacing;
- positions may drift sideways by 0.01 mm + `ORIENTATION_TOLERANCE` x the distance along the
  normal (rounding of written positions and of the cosines), no more: more is a gantry tilt
  (or any other shear), which this project refuses rather than resamples;
- pixel spacings agree within `PIXEL_SPACING_TOLERANCE` (0.1 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from math import atan2, degrees

import numpy as np
import numpy.typing as npt

from dicom_node.errors import VolumeAssemblyError
from pipelines.volume import Vector3

__all__ = [
    "ORIENTATION_TOLERANCE",
    "PIXEL_SPACING_TOLERANCE",
    "POSITION_TOLERANCE_MM",
    "SPACING_TOLERANCE",
    "AssemblyRejection",
    "FramePlane",
    "StackGeometry",
    "stack_planes",
]

ORIENTATION_TOLERANCE = 1e-3
POSITION_TOLERANCE_MM = 0.01
SPACING_TOLERANCE = 0.01
PIXEL_SPACING_TOLERANCE = 1e-3


class AssemblyRejection(StrEnum):
    """Why a series cannot become one image volume (the `reason` of a VolumeAssemblyError)."""

    NO_IMAGES = "no_images"  # no file was given
    UNREADABLE_FILE = "unreadable_file"  # not a DICOM file, or one that does not parse
    NOT_AN_IMAGE = "not_an_image"  # an instance without Pixel Data
    MISSING_UID = "missing_uid"  # no SOP Instance UID, neither in the dataset nor the file meta
    DUPLICATE_INSTANCE = "duplicate_instance"  # the same SOP Instance UID in two files
    MIXED_MODALITY = "mixed_modality"
    MISSING_GEOMETRY = "missing_geometry"  # no position, orientation or pixel spacing
    INVALID_GEOMETRY = "invalid_geometry"  # cosines not orthonormal, spacing not positive
    MIXED_FRAME_OF_REFERENCE = "mixed_frame_of_reference"
    MIXED_ORIENTATION = "mixed_orientation"
    MIXED_SIZE = "mixed_size"  # Rows/Columns differ
    MIXED_PIXEL_SPACING = "mixed_pixel_spacing"
    DUPLICATE_POSITION = "duplicate_position"  # two frames at one place along the normal
    MISSING_SLICE = "missing_slice"  # a gap of a whole number (>= 2) of steps
    NON_UNIFORM_SPACING = "non_uniform_spacing"
    GANTRY_TILT = "gantry_tilt"  # positions not along the normal (tilt or any other shear)
    UNSUPPORTED_PIXEL_DATA = "unsupported_pixel_data"  # colour, float, unknown transfer syntax
    CORRUPT_PIXEL_DATA = "corrupt_pixel_data"  # truncated or undecodable pixel data
    # cine (dicom_node.series.cine)
    CINE_UNORDERED = "cine_unordered"  # no Trigger Time nor Temporal Position Index
    CINE_DUPLICATE_PHASE = "cine_duplicate_phase"  # two frames of one phase at one location
    CINE_MISSING_PHASE = "cine_missing_phase"  # locations differ in their number of phases


@dataclass(frozen=True)
class FramePlane:
    """The plane of one frame, as its header gives it."""

    label: str  # where it comes from, for messages: "file.dcm" or "file.dcm frame 3"
    position: Vector3  # ImagePositionPatient, mm
    orientation: tuple[float, float, float, float, float, float]  # ImageOrientationPatient
    pixel_spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns), mm
    rows: int
    columns: int


@dataclass(frozen=True)
class StackGeometry:
    """Where the frames go and the grid they make (axes as in `pipelines.ImageVolume`)."""

    order: tuple[int, ...]  # order[k] is the index (into the given planes) of slice k
    origin: Vector3
    spacing: Vector3
    direction: tuple[Vector3, Vector3, Vector3]


def stack_planes(
    planes: Sequence[FramePlane], *, single_slice_spacing: float | None = None
) -> StackGeometry:
    """Sort frames along the slice normal and check that they form one regular grid.

    Slices are ordered by ascending projection of their position on the normal
    (row cosine x column cosine), so direction[0] is the normal and points from the first
    slice to the last. With one frame the slice spacing is `single_slice_spacing` (the caller's
    Spacing Between Slices or Slice Thickness); without it the frame is refused.
    """
    if not planes:
        raise VolumeAssemblyError(AssemblyRejection.NO_IMAGES, "no frames to stack")
    for plane in planes:
        _check_plane(plane)
    _check_same_size(planes)
    row, column, normal = _common_orientation(planes)
    pixel_spacing = _common_pixel_spacing(planes)

    positions = np.array([plane.position for plane in planes], dtype=float)
    heights = positions @ normal
    order = np.argsort(heights, kind="stable")
    heights, positions = heights[order], positions[order]
    labels = [planes[int(index)].label for index in order]

    if len(planes) == 1:
        if single_slice_spacing is None or not single_slice_spacing > 0:
            raise VolumeAssemblyError(
                AssemblyRejection.MISSING_GEOMETRY,
                f"{labels[0]} is a single slice without Spacing Between Slices or Slice "
                "Thickness, so its slice spacing is unknown",
            )
        slice_spacing = float(single_slice_spacing)
    else:
        _check_no_duplicates(heights, labels)
        _check_no_tilt(positions, normal, labels)
        slice_spacing = _regular_step(heights, labels)

    return StackGeometry(
        order=tuple(int(index) for index in order),
        origin=_vector(positions[0]),
        spacing=(slice_spacing, pixel_spacing[0], pixel_spacing[1]),
        direction=(_vector(normal), _vector(column), _vector(row)),
    )


def _check_plane(plane: FramePlane) -> None:
    cosines = np.asarray(plane.orientation, dtype=float)
    row, column = cosines[:3], cosines[3:]
    if (
        abs(np.linalg.norm(row) - 1) > ORIENTATION_TOLERANCE
        or abs(np.linalg.norm(column) - 1) > ORIENTATION_TOLERANCE
        or abs(float(row @ column)) > ORIENTATION_TOLERANCE
    ):
        raise VolumeAssemblyError(
            AssemblyRejection.INVALID_GEOMETRY,
            f"{plane.label}: Image Orientation (Patient) {_format(plane.orientation)} is not "
            "two orthogonal unit vectors",
        )
    if not all(spacing > 0 for spacing in plane.pixel_spacing):
        raise VolumeAssemblyError(
            AssemblyRejection.INVALID_GEOMETRY,
            f"{plane.label}: Pixel Spacing {_format(plane.pixel_spacing)} is not positive",
        )
    if plane.rows < 1 or plane.columns < 1:
        raise VolumeAssemblyError(
            AssemblyRejection.INVALID_GEOMETRY,
            f"{plane.label}: {plane.rows} rows x {plane.columns} columns",
        )


def _check_same_size(planes: Sequence[FramePlane]) -> None:
    first = planes[0]
    for plane in planes[1:]:
        if (plane.rows, plane.columns) != (first.rows, first.columns):
            raise VolumeAssemblyError(
                AssemblyRejection.MIXED_SIZE,
                f"{plane.label} is {plane.rows}x{plane.columns} (rows x columns) but "
                f"{first.label} is {first.rows}x{first.columns}",
            )


def _common_orientation(
    planes: Sequence[FramePlane],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The row, column and normal unit vectors shared by all frames (their median, made
    orthonormal, so that jitter in the last written digits of the cosines evens out)."""
    cosines = np.array([plane.orientation for plane in planes], dtype=float)
    differences = np.abs(cosines - cosines[0]).max(axis=1)
    worst = int(np.argmax(differences))
    if differences[worst] > ORIENTATION_TOLERANCE:
        raise VolumeAssemblyError(
            AssemblyRejection.MIXED_ORIENTATION,
            f"{planes[worst].label} has Image Orientation (Patient) "
            f"{_format(planes[worst].orientation)} but {planes[0].label} has "
            f"{_format(planes[0].orientation)}",
        )
    median = np.median(cosines, axis=0)
    row = median[:3] / np.linalg.norm(median[:3])
    column = median[3:] - (median[3:] @ row) * row
    column /= np.linalg.norm(column)
    return row, column, np.cross(row, column)


def _common_pixel_spacing(planes: Sequence[FramePlane]) -> tuple[float, float]:
    spacings = np.array([plane.pixel_spacing for plane in planes], dtype=float)
    relative = np.abs(spacings / spacings[0] - 1).max(axis=1)
    worst = int(np.argmax(relative))
    if relative[worst] > PIXEL_SPACING_TOLERANCE:
        raise VolumeAssemblyError(
            AssemblyRejection.MIXED_PIXEL_SPACING,
            f"{planes[worst].label} has Pixel Spacing {_format(planes[worst].pixel_spacing)} "
            f"but {planes[0].label} has {_format(planes[0].pixel_spacing)}",
        )
    median = np.median(spacings, axis=0)
    return float(median[0]), float(median[1])


def _check_no_duplicates(heights: npt.NDArray[np.float64], labels: Sequence[str]) -> None:
    steps = np.diff(heights)
    close = np.flatnonzero(steps <= POSITION_TOLERANCE_MM)
    if close.size:
        k = int(close[0])
        raise VolumeAssemblyError(
            AssemblyRejection.DUPLICATE_POSITION,
            f"{labels[k]} and {labels[k + 1]} are both at {heights[k]:.3f} mm along the slice "
            f"normal ({close.size} such pair(s); several stacks or repeated acquisitions?)",
        )


def _check_no_tilt(
    positions: npt.NDArray[np.float64], normal: npt.NDArray[np.float64], labels: Sequence[str]
) -> None:
    offsets = positions - positions[0]
    along = offsets @ normal
    sideways = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    allowed = POSITION_TOLERANCE_MM + ORIENTATION_TOLERANCE * np.abs(along)
    beyond = np.flatnonzero(sideways > allowed)
    if beyond.size:
        last = len(labels) - 1
        angle = degrees(atan2(float(sideways[last]), abs(float(along[last]))))
        k = int(beyond[0])
        raise VolumeAssemblyError(
            AssemblyRejection.GANTRY_TILT,
            f"slice positions are not along the slice normal: {labels[k]} is "
            f"{sideways[k]:.3f} mm to the side of the line through {labels[0]}, and the stack "
            f"leans {angle:.2f} degrees over {abs(float(along[last])):.1f} mm "
            "(gantry tilt or sheared stack; not resampled)",
        )


def _regular_step(heights: npt.NDArray[np.float64], labels: Sequence[str]) -> float:
    """The slice spacing of positions sorted along the normal, or a refusal naming the first
    gap that is not one regular step."""
    steps = np.diff(heights)
    nominal = float(np.median(steps))
    for k, step in enumerate(steps):
        step = float(step)
        if abs(step - nominal) <= _step_tolerance(nominal):
            continue
        where = f"between slice {k + 1} ({labels[k]}) and slice {k + 2} ({labels[k + 1]})"
        multiple = round(step / nominal)
        if multiple >= 2 and abs(step - multiple * nominal) <= _step_tolerance(multiple * nominal):
            raise VolumeAssemblyError(
                AssemblyRejection.MISSING_SLICE,
                f"gap of {step:.3f} mm {where} where spacing is {nominal:.3f} mm "
                f"({multiple - 1} slice(s) missing)",
            )
        raise VolumeAssemblyError(
            AssemblyRejection.NON_UNIFORM_SPACING,
            f"step of {step:.3f} mm {where} where spacing is {nominal:.3f} mm "
            f"(tolerance {_step_tolerance(nominal):.3f} mm; not resampled)",
        )
    return float(heights[-1] - heights[0]) / (len(heights) - 1)


def _step_tolerance(nominal: float) -> float:
    return POSITION_TOLERANCE_MM + SPACING_TOLERANCE * nominal


def _vector(values: npt.NDArray[np.float64]) -> Vector3:
    return float(values[0]), float(values[1]), float(values[2])


def _format(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]"
