"""Voxel grids in patient space, and putting a prediction on the reference's grid.

A `Grid` uses the conventions of `pipelines.ImageVolume`: numpy axis order
``array[slice, row, column]``, `direction[a]` the unit vector in DICOM patient coordinates (LPS,
mm; PS3.3 C.7.6.2.1.1) along which axis `a` grows, `spacing[a]` the distance between voxel
centres on that axis, `origin` the centre of voxel (0, 0, 0).

The evaluation grid (`common_grid`) is the reference's grid, grown by whole voxels where the
prediction has labelled voxels outside it, so that no predicted voxel is lost (a false positive
outside the reference's extent still counts). The prediction is resampled onto it by physical
position, nearest neighbour: each evaluation voxel takes the label of the prediction voxel whose
centre is nearest to its centre (SimpleITK `sitkNearestNeighbor`), 0 outside the prediction.
The reference is only padded with zeros, never resampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from dicom_node.evaluation.errors import GridMismatchError

__all__ = ["MAX_VOXELS", "Grid", "LabelArray", "content_box", "grow_grid", "resample_nearest"]

Vector3 = tuple[float, float, float]
LabelArray = npt.NDArray[np.unsignedinteger]

# An evaluation grid beyond this is a sign of inputs in different places, not of a large CT.
MAX_VOXELS = 2_000_000_000
_POSITION_TOLERANCE_MM = 1e-3
_DIRECTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    origin: Vector3
    spacing: Vector3
    direction: tuple[Vector3, Vector3, Vector3]

    def __post_init__(self) -> None:
        if any(size < 1 for size in self.shape):
            raise ValueError(f"a grid has at least one voxel per axis (got {self.shape})")
        if any(not s > 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive (got {self.spacing})")
        matrix = np.asarray(self.direction, dtype=float)
        if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-3):
            raise ValueError("direction must hold three orthonormal unit vectors")

    @classmethod
    def from_affine(cls, shape: tuple[int, int, int], affine: npt.ArrayLike) -> Grid:
        """The grid of a 4x4 matrix taking (slice, row, column, 1) to LPS millimetres."""
        matrix = np.asarray(affine, dtype=float)
        spacing = np.linalg.norm(matrix[:3, :3], axis=0)
        if np.any(spacing <= 0):
            raise ValueError("the affine has an axis of zero length")
        directions = (matrix[:3, :3] / spacing).T
        return cls(shape, _vector(matrix[:3, 3]), _vector(spacing), _vectors(directions))

    @classmethod
    def unit(cls, shape: tuple[int, int, int], spacing: Vector3 = (1.0, 1.0, 1.0)) -> Grid:
        """An axis-aligned grid at the origin, for arrays without geometry."""
        return cls(
            shape, (0.0, 0.0, 0.0), spacing, ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
        )

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.direction, dtype=float).T * np.asarray(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def voxel_count(self) -> int:
        return math.prod(self.shape)

    def same_as(self, other: Grid) -> bool:
        """Same shape, and voxel centres within 1 µm of each other."""
        if self.shape != other.shape:
            return False
        corners = np.array([[0, 0, 0, 1], [*(size - 1 for size in self.shape), 1]], dtype=float).T
        return bool(
            np.allclose(self.affine @ corners, other.affine @ corners, atol=_POSITION_TOLERANCE_MM)
            and np.allclose(self.direction, other.direction, atol=_DIRECTION_TOLERANCE)
        )


def content_box(layers: tuple[LabelArray, ...]) -> tuple[npt.NDArray[np.int64], ...] | None:
    """(first, last) index per axis of the labelled voxels of all layers; None if none."""
    any_label = np.zeros(layers[0].shape, dtype=bool)
    for layer in layers:
        any_label |= layer != 0
    if not any_label.any():
        return None
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        (indices,) = np.nonzero(any_label.any(axis=others))
        bounds.append(np.array([indices[0], indices[-1]], dtype=np.int64))
    return tuple(bounds)


def grow_grid(
    reference: Grid, prediction: Grid, box: tuple[npt.NDArray[np.int64], ...] | None
) -> tuple[Grid, tuple[int, int, int]]:
    """The reference grid grown to hold the prediction's labelled box, and the index in the
    grown grid of the reference's voxel (0, 0, 0)."""
    if box is None:
        return reference, (0, 0, 0)
    # Corners of the labelled voxels (their outer faces) in the reference's continuous index.
    faces = [(float(first) - 0.5, float(last) + 0.5) for first, last in box]
    corners = np.array(
        [[k, i, j, 1.0] for k in faces[0] for i in faces[1] for j in faces[2]], dtype=float
    ).T
    to_reference = np.linalg.inv(reference.affine) @ prediction.affine
    continuous = (to_reference @ corners)[:3]
    # A reference voxel centre inside [low, high] is nearest to a labelled prediction voxel.
    low = np.minimum(np.ceil(continuous.min(axis=1) - 1e-6), 0).astype(int)
    high = np.maximum(np.floor(continuous.max(axis=1) + 1e-6), np.array(reference.shape) - 1)
    shape = tuple(int(last - first + 1) for first, last in zip(low, high, strict=True))
    if math.prod(shape) > MAX_VOXELS:
        raise GridMismatchError(
            f"the prediction lies too far from the reference to share a grid "
            f"({'x'.join(map(str, shape))} voxels); are they of the same patient space?"
        )
    origin = reference.affine @ np.array([*low.tolist(), 1.0])
    grown = Grid(
        (shape[0], shape[1], shape[2]), _vector(origin[:3]), reference.spacing, reference.direction
    )
    offset = (-int(low[0]), -int(low[1]), -int(low[2]))
    return grown, offset


def pad_into(layer: LabelArray, grid: Grid, offset: tuple[int, int, int]) -> LabelArray:
    """`layer` placed at `offset` in a zero array of the grid's shape."""
    if layer.shape == grid.shape and offset == (0, 0, 0):
        return layer
    padded = np.zeros(grid.shape, dtype=layer.dtype)
    k, i, j = offset
    depth, rows, columns = layer.shape
    padded[k : k + depth, i : i + rows, j : j + columns] = layer
    return padded


def resample_nearest(layer: LabelArray, source: Grid, target: Grid) -> LabelArray:
    """The labels of `layer` (on `source`) at the voxel centres of `target`, by physical
    position, nearest neighbour; 0 where `target` lies outside `source`."""
    if source.same_as(target):
        return layer
    image = _to_itk(layer, source)
    resampler: Any = sitk.ResampleImageFilter()  # type: ignore[no-untyped-call]
    resampler.SetInterpolator(sitk.sitkNearestNeighbor)
    resampler.SetDefaultPixelValue(0)
    resampler.SetOutputPixelType(image.GetPixelID())
    resampler.SetSize([int(size) for size in reversed(target.shape)])
    resampler.SetOutputOrigin(target.origin)
    resampler.SetOutputSpacing(tuple(reversed(target.spacing)))
    resampler.SetOutputDirection(_itk_direction(target))
    resampled: LabelArray = sitk.GetArrayFromImage(resampler.Execute(image))
    return resampled


def _to_itk(layer: LabelArray, grid: Grid) -> Any:
    # numpy [slice, row, column] is ITK (z, y, x): ITK's axis order is the reverse of ours.
    image: Any = sitk.GetImageFromArray(np.ascontiguousarray(layer))
    image.SetOrigin(grid.origin)
    image.SetSpacing(tuple(reversed(grid.spacing)))
    image.SetDirection(_itk_direction(grid))
    return image


def _itk_direction(grid: Grid) -> tuple[float, ...]:
    """ITK's row-major direction matrix: column c is the direction of ITK axis c (x, y, z)."""
    columns = np.asarray(grid.direction[::-1], dtype=float).T
    return tuple(float(value) for value in columns.ravel())


def _vector(values: npt.ArrayLike) -> Vector3:
    x, y, z = (float(value) for value in np.asarray(values, dtype=float))
    return x, y, z


def _vectors(rows: npt.ArrayLike) -> tuple[Vector3, Vector3, Vector3]:
    first, second, third = (_vector(row) for row in np.asarray(rows, dtype=float))
    return first, second, third
