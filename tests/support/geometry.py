"""Real images as ImageVolumes, and the same patient on other grids (geometry tests)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from pipelines import ImageVolume

__all__ = ["reoriented", "volume_from_image"]


def volume_from_image(image: sitk.Image, modality: str = "CT") -> ImageVolume:
    """SimpleITK gives LPS geometry in (x, y, z) index order; our arrays are [z, y, x]."""
    array = sitk.GetArrayFromImage(image)
    axes = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)  # column k = index axis k
    direction = tuple(tuple(float(v) for v in axes[:, k]) for k in (2, 1, 0))
    x, y, z = image.GetSpacing()
    return ImageVolume(array, image.GetOrigin(), (z, y, x), direction, modality)


def reoriented(
    volume: ImageVolume, labels: np.ndarray, order: tuple[int, int, int], flips: tuple[int, ...]
) -> tuple[ImageVolume, np.ndarray]:
    """The same patient on another grid: array axes permuted by `order`, then `flips` reversed.

    New axis a is old axis order[a]; the voxel at new index 0 is the old voxel at the start
    of that axis, or at its end where the axis is flipped, and a flipped axis points back.
    """
    array, truth = np.transpose(volume.array, order), np.transpose(labels, order)
    first = [0, 0, 0]
    direction = []
    for new_axis, old_axis in enumerate(order):
        cosines = volume.direction[old_axis]
        if new_axis in flips:
            first[old_axis] = volume.shape[old_axis] - 1
            cosines = (-cosines[0], -cosines[1], -cosines[2])
        direction.append(cosines)
    if flips:
        array, truth = np.flip(array, flips), np.flip(truth, flips)
    origin = tuple(float(v) for v in volume.index_to_world(first))
    spacing = tuple(volume.spacing[axis] for axis in order)
    moved = ImageVolume(
        np.ascontiguousarray(array), origin, spacing, tuple(direction), volume.modality
    )
    return moved, np.ascontiguousarray(truth)
