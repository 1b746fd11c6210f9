"""The image a pipeline receives: a 3D array with its place in patient space.

Axes follow numpy order: ``array[slice, row, column]``. ``direction[a]`` is the unit vector, in
DICOM patient coordinates (LPS, mm; PS3.3 C.7.6.2.1.1), along which array axis ``a`` grows, and
``spacing[a]`` the distance between neighbours on that axis. So for a single-frame stack:
``direction[2]`` is the row direction cosine (ImageOrientationPatient[0:3]), ``direction[1]`` the
column direction cosine (ImageOrientationPatient[3:6]), ``direction[0]`` the slice normal pointing
from the first slice to the last, and ``origin`` is ImagePositionPatient of the first slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ImageVolume", "Vector3"]

Vector3 = tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class ImageVolume:
    array: npt.NDArray[np.generic]
    origin: Vector3
    spacing: Vector3
    direction: tuple[Vector3, Vector3, Vector3]
    # DICOM Modality of the source series (CT, MR, ...); array values are in its units
    # (Hounsfield units for CT: rescale slope/intercept already applied).
    modality: str = ""

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"an ImageVolume is 3D (got {self.array.ndim} dimensions)")
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive (got {self.spacing})")
        matrix = np.asarray(self.direction, dtype=float)
        if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-4):
            raise ValueError("direction must hold three orthonormal unit vectors")

    @property
    def shape(self) -> tuple[int, int, int]:
        depth, rows, columns = self.array.shape
        return depth, rows, columns

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """4x4 matrix taking homogeneous (slice, row, column, 1) indices to LPS millimetres."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.direction, dtype=float).T * np.asarray(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def index_to_world(self, index: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """LPS position(s) of voxel centre(s) given as (slice, row, column), shape (..., 3)."""
        points = np.asarray(index, dtype=float)
        matrix = self.affine
        return points @ matrix[:3, :3].T + matrix[:3, 3]

    def with_array(self, array: npt.NDArray[np.generic]) -> ImageVolume:
        """The same grid holding other values (a label map, a mask)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return ImageVolume(array, self.origin, self.spacing, self.direction, self.modality)

    def crop(self, box: tuple[slice, slice, slice]) -> ImageVolume:
        """The sub-volume ``array[box]`` (a view) in the same patient space: spacing and direction
        stay, the origin moves to the centre of the box's first voxel, so every voxel keeps its
        LPS position. `box` holds one slice per axis (None ends allowed, step 1, clipped to the
        grid like numpy does); an empty box raises ValueError."""
        if len(box) != 3:
            raise ValueError(f"a crop box has one slice per axis (got {len(box)})")
        bounds = [part.indices(size) for part, size in zip(box, self.shape, strict=True)]
        if any(step != 1 for _, _, step in bounds):
            raise ValueError("a crop box has step 1 on every axis")
        if any(stop <= start for start, stop, _ in bounds):
            raise ValueError(f"the crop box {box} holds no voxel of the grid {self.shape}")
        first = [start for start, _, _ in bounds]
        x, y, z = (float(value) for value in self.index_to_world(first))
        window = tuple(slice(start, stop) for start, stop, _ in bounds)
        return ImageVolume(
            self.array[window], (x, y, z), self.spacing, self.direction, self.modality
        )
