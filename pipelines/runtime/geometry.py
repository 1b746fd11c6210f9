"""Exact reorientation of an image volume to a model's axis codes (no interpolation).

Axis codes follow nibabel's convention (``nibabel.orientations.aff2axcodes``): three letters for
the model input's x, y, z axes, each naming the anatomical direction toward which that index
grows ("RAS" is nibabel's canonical orientation, "LPS" a head-first-supine axial DICOM stack as
stored). In an :class:`~pipelines.volume.ImageVolume` the array is ``[slice, row, column]``, so
x is array axis 2, y axis 1 and z axis 0, and directions are in DICOM patient coordinates (LPS,
PS3.3 C.7.6.2.1.1): +x toward the patient's Left, +y Posterior, +z Superior.

Reorientation only permutes and flips array axes, so it is exact and reversible: labels computed
on the reoriented array go back with :meth:`Reorientation.revert` voxel for voxel. An oblique
stack is mapped to the closest standard axes (each array axis to the patient axis its direction
is nearest to, as nibabel's ``io_orientation`` does); it is not resampled, so the model sees the
stack in the nearest standard orientation, tilted by the stack's obliquity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch

from pipelines.volume import ImageVolume, Vector3

__all__ = ["Reorientation", "axcodes_of", "check_axcodes", "reorient", "reorientation_for"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# letter -> (LPS patient axis, sign of that axis the index grows toward)
_LETTERS: dict[str, tuple[int, int]] = {
    "L": (0, 1),
    "R": (0, -1),
    "P": (1, 1),
    "A": (1, -1),
    "S": (2, 1),
    "I": (2, -1),
}
_NAMES = (("R", "L"), ("A", "P"), ("I", "S"))  # per patient axis: (negative, positive) letter


def check_axcodes(codes: str) -> str:
    """``codes`` in capitals if it has one of L/R, one of P/A and one of I/S; else ValueError."""
    upper = codes.upper()
    if len(upper) != 3 or any(c not in _LETTERS for c in upper):
        raise ValueError(f"orientation {codes!r} is not three of the letters L/R, P/A, I/S")
    if sorted(_LETTERS[c][0] for c in upper) != [0, 1, 2]:
        raise ValueError(f"orientation {codes!r} needs one of L/R, one of P/A and one of I/S")
    return upper


def _closest_axes(direction: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Per array axis: (patient axis, sign) of the nearest standard direction, each axis once.

    Greedy on the largest absolute cosine, like nibabel's ``io_orientation``: for a 45 degree
    tie the lower axis wins, deterministically.
    """
    cosines = np.abs(direction)
    result: list[tuple[int, int]] = [(0, 0)] * 3
    for _ in range(3):
        array_axis, patient_axis = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
        sign = 1 if direction[array_axis, patient_axis] >= 0 else -1
        result[int(array_axis)] = (int(patient_axis), sign)
        cosines[array_axis, :] = -1.0
        cosines[:, patient_axis] = -1.0
    return result


def axcodes_of(volume: ImageVolume) -> str:
    """The volume's axis codes (x, y, z = column, row, slice), nearest axes when oblique."""
    axes = _closest_axes(np.asarray(volume.direction, dtype=float))
    letters = [_NAMES[patient][1 if sign > 0 else 0] for patient, sign in axes]
    return letters[2] + letters[1] + letters[0]


@dataclass(frozen=True)
class Reorientation:
    """Axis permutation and flips taking a ``[slice, row, column]`` array to a model's codes.

    Output array axis ``b`` is source axis ``permutation[b]``, reversed when ``flips[b]``.
    Both methods act on the last three axes, so channel axes in front are carried along.
    """

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @property
    def is_identity(self) -> bool:
        return self.permutation == (0, 1, 2) and not any(self.flips)

    def apply(self, array: ArrayT) -> ArrayT:
        lead: int = array.ndim - 3
        order = (*range(lead), *(lead + p for p in self.permutation))
        flipped = tuple(lead + b for b in range(3) if self.flips[b])
        if isinstance(array, torch.Tensor):
            moved = array.permute(order)
            return moved.flip(flipped) if flipped else moved
        moved_np = np.transpose(array, order)
        return np.flip(moved_np, flipped) if flipped else moved_np

    def revert(self, array: ArrayT) -> ArrayT:
        lead: int = array.ndim - 3
        flipped = tuple(lead + b for b in range(3) if self.flips[b])
        inverse: list[int] = sorted(range(3), key=lambda b: self.permutation[b])
        order = (*range(lead), *(lead + b for b in inverse))
        if isinstance(array, torch.Tensor):
            unflipped = array.flip(flipped) if flipped else array
            return unflipped.permute(order)
        unflipped_np = np.flip(array, flipped) if flipped else array
        return np.transpose(unflipped_np, order)

    def shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The reoriented array's shape."""
        a, b, c = (shape[p] for p in self.permutation)
        return a, b, c

    def spacing(self, spacing: Vector3) -> Vector3:
        """The reoriented array's spacing (mm, per array axis)."""
        a, b, c = (spacing[p] for p in self.permutation)
        return a, b, c


def reorientation_for(volume: ImageVolume, codes: str) -> Reorientation:
    """The permutation and flips that bring ``volume`` to the axis codes ``codes`` (x, y, z)."""
    target = check_axcodes(codes)
    # array axis of the output for each letter: codes name x, y, z = array axes 2, 1, 0
    wanted = {_LETTERS[letter][0]: (2 - i, _LETTERS[letter][1]) for i, letter in enumerate(target)}
    permutation = [0, 0, 0]
    flips = [False, False, False]
    for source_axis, (patient_axis, sign) in enumerate(
        _closest_axes(np.asarray(volume.direction, dtype=float))
    ):
        output_axis, wanted_sign = wanted[patient_axis]
        permutation[output_axis] = source_axis
        flips[output_axis] = sign != wanted_sign
    p0, p1, p2 = permutation
    f0, f1, f2 = flips
    return Reorientation((p0, p1, p2), (f0, f1, f2))


def reorient(volume: ImageVolume, codes: str) -> tuple[ImageVolume, Reorientation]:
    """``volume`` with its array permuted/flipped to ``codes``, same voxels at the same places.

    The returned volume's geometry is exact: every voxel keeps its patient position, so an
    oblique stack stays oblique in its direction cosines while its axes follow ``codes``.
    """
    transform = reorientation_for(volume, codes)
    if transform.is_identity:
        return volume, transform
    direction = np.asarray(volume.direction, dtype=float)
    shape = volume.shape
    first_voxel = [0.0, 0.0, 0.0]  # source index of the output's first voxel
    new_direction: list[Vector3] = []
    for output_axis, source_axis in enumerate(transform.permutation):
        sign = -1.0 if transform.flips[output_axis] else 1.0
        if transform.flips[output_axis]:
            first_voxel[source_axis] = float(shape[source_axis] - 1)
        x, y, z = (float(v) for v in sign * direction[source_axis])
        new_direction.append((x, y, z))
    ox, oy, oz = (float(v) for v in volume.index_to_world(first_voxel))
    array = np.ascontiguousarray(transform.apply(volume.array))
    reoriented = ImageVolume(
        array,
        (ox, oy, oz),
        transform.spacing(volume.spacing),
        (new_direction[0], new_direction[1], new_direction[2]),
        volume.modality,
    )
    return reoriented, transform
