"""Grid helpers shared by the ct_basic steps: axes, millimetre-sized morphology, 2D hole filling.

Everything here works in the volume's own array order and converts millimetres to voxels per
axis, so the steps behave the same for any spacing and any orientation (PS3.3 C.7.6.2.1.1: LPS,
+x towards the patient's left, +z towards the head).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipelines.volume import ImageVolume

__all__ = [
    "BoolArray",
    "FloatArray",
    "HuArray",
    "IndexBox",
    "axial_axis",
    "bounding_box",
    "dilate_mm",
    "erode_mm",
    "fill_holes_in_planes",
    "superior_sign",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
HuArray = npt.NDArray[Any]  # Hounsfield units in any numeric dtype
IndexBox = tuple[slice, slice, slice]

# Neighbours within one plane: the 4-connected cross in the two in-plane axes.
_PLANE_CROSS = ndimage.generate_binary_structure(2, 1)


def axial_axis(volume: ImageVolume) -> int:
    """The array axis closest to the patient's head-feet (z) direction."""
    return int(np.argmax(np.abs(np.asarray(volume.direction, dtype=float)[:, 2])))


def superior_sign(volume: ImageVolume) -> int:
    """+1 when indices along the axial axis grow towards the head, -1 when towards the feet."""
    return 1 if volume.direction[axial_axis(volume)][2] > 0 else -1


def bounding_box(mask: BoolArray, margin: int = 1) -> IndexBox | None:
    """The smallest box (plus `margin` voxels, clipped to the grid) holding all of `mask`."""
    box: list[slice] = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        if present.size == 0:
            return None
        start = max(int(present[0]) - margin, 0)
        stop = min(int(present[-1]) + margin + 1, mask.shape[axis])
        box.append(slice(start, stop))
    return box[0], box[1], box[2]


def _steps(
    radius_mm: float, spacing: tuple[float, float, float], axes: tuple[int, ...], minimum: int
) -> list[int]:
    return [max(int(radius_mm // spacing[a]), minimum) if a in axes else 0 for a in range(3)]


def dilate_mm(
    mask: BoolArray,
    radius_mm: float,
    spacing: tuple[float, float, float],
    axes: tuple[int, ...] = (0, 1, 2),
    *,
    minimum_voxels: int = 0,
) -> BoolArray:
    """A new mask: `mask` dilated by a box of half-width `radius_mm` on the listed axes.

    Axes coarser than the radius are left alone unless `minimum_voxels` asks for a reach.
    A separable box keeps the cost independent of the radius, which matters on 512x512x300.
    """
    out = mask.astype(np.uint8)
    for axis, steps in enumerate(_steps(radius_mm, spacing, axes, minimum_voxels)):
        if steps > 0:
            out = ndimage.maximum_filter1d(out, size=2 * steps + 1, axis=axis)
    return out.astype(bool)


def erode_mm(
    mask: BoolArray,
    radius_mm: float,
    spacing: tuple[float, float, float],
    axes: tuple[int, ...] = (0, 1, 2),
) -> BoolArray:
    """A new mask: `mask` eroded by a box of half-width `radius_mm` on the listed axes."""
    out = mask.astype(np.uint8)
    for axis, steps in enumerate(_steps(radius_mm, spacing, axes, 0)):
        if steps > 0:
            out = ndimage.minimum_filter1d(out, size=2 * steps + 1, axis=axis, mode="nearest")
    return out.astype(bool)


def fill_holes_in_planes(
    mask: BoolArray,
    axis: int,
    *,
    pixel_area_mm2: float = 1.0,
    max_area_mm2: float | None = None,
    values: HuArray | None = None,
    keep_if_mean_within: tuple[float, float] | None = None,
    max_rule_area_mm2: float | None = None,
) -> BoolArray:
    """Fill the 2D holes of `mask` in every plane across `axis` (4-connected background).

    Without limits every hole is filled. With `max_area_mm2` a hole is filled when it is no
    larger than that, or (with `values`) when it is no larger than `max_rule_area_mm2` and
    its mean value lies outside the closed range `keep_if_mean_within`.
    """
    moved = np.moveaxis(mask, axis, 0)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = _PLANE_CROSS
    labels, count = ndimage.label(~moved, structure=structure)
    is_hole = np.ones(count + 1, dtype=bool)
    is_hole[0] = False
    for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        is_hole[np.unique(edge)] = False
    if max_area_mm2 is not None and count > 0:
        pixels = np.bincount(labels.ravel(), minlength=count + 1)
        area = pixels * pixel_area_mm2
        fill = area <= max_area_mm2
        if values is not None and keep_if_mean_within is not None:
            moved_values = np.moveaxis(values, axis, 0)
            sums = np.bincount(labels.ravel(), weights=moved_values.ravel(), minlength=count + 1)
            mean = sums / np.maximum(pixels, 1)
            low, high = keep_if_mean_within
            limit = np.inf if max_rule_area_mm2 is None else max_rule_area_mm2
            fill |= ((mean < low) | (mean > high)) & (area <= limit)
        is_hole &= fill
    filled = moved | is_hole[labels]
    return np.moveaxis(filled, 0, axis)
