"""Resampling between the source grid and a model's grid, on torch tensors.

Both directions use the same geometric convention, that of ``F.interpolate(...,
align_corners=False)`` with an explicit output size (also scikit-image's ``resize`` used by
nnU-Net, and ``scipy.ndimage.zoom(grid_mode=True)``): the two grids share their extent, the
outer faces of the first and last voxels, so output voxel ``i`` of ``m`` samples input coordinate
``(i + 0.5) * n / m - 0.5`` of ``n``. The model grid is therefore the source field of view cut into
``round(n * spacing / target_spacing)`` voxels (nnU-Net's ``compute_new_shape``), and going back
to the source shape lands every label on the same patient position it was computed for.

- images: trilinear (:func:`resample_image`);
- label maps: nearest label (:func:`resample_labels`), a gather of the nearest source voxel
  (``floor((i + 0.5) * n / m)``, PyTorch's ``nearest-exact``) done in slabs along z; works on
  any integer dtype and never builds a per-label (one-hot) array, so its cost does not grow
  with the number of labels (nnU-Net's export resizes one indicator per label with scipy);
- scalar maps such as entropy: trilinear (:func:`resample_scalar`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "nearest_indices",
    "resample_image",
    "resample_labels",
    "resample_scalar",
    "target_shape",
]

Shape3 = tuple[int, int, int]
LABEL_SLAB = 16  # output slices per gather step: bounds the temporary to 16 * rows * columns


def target_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> Shape3:
    """Voxel counts of the grid with spacing ``target`` over the same extent (nnU-Net rounding)."""
    a, b, c = (max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))
    return a, b, c


def resample_image(image: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A ``(C, z, y, x)`` float image trilinearly resampled to ``shape`` (same extent)."""
    if tuple(image.shape[1:]) == tuple(shape):
        return image
    resized = F.interpolate(image[None], size=tuple(shape), mode="trilinear", align_corners=False)
    return resized[0]


def resample_scalar(values: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A ``(z, y, x)`` float map trilinearly resampled to ``shape`` (same extent)."""
    return resample_image(values[None], shape)[0]


def nearest_indices(size: int, new_size: int, device: torch.device) -> torch.Tensor:
    """Source index nearest to each of ``new_size`` voxel centres on an axis of ``size`` voxels.

    ``floor((i + 0.5) * size / new_size)`` in exact integer arithmetic:
    ``((2 i + 1) * size) // (2 new_size)``; so half-way cases resolve the same on every
    platform, with no floating-point rounding.
    """
    steps = torch.arange(new_size, dtype=torch.int64, device=device)
    return torch.clamp(((2 * steps + 1) * size) // (2 * new_size), max=size - 1)


def resample_labels(labels: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A ``(z, y, x)`` label map resampled to ``shape`` by nearest label (same extent, dtype)."""
    depth, rows, columns = (int(n) for n in shape)
    if tuple(labels.shape) == (depth, rows, columns):
        return labels
    device = labels.device
    z_index = nearest_indices(labels.shape[0], depth, device)
    y_index = nearest_indices(labels.shape[1], rows, device)
    x_index = nearest_indices(labels.shape[2], columns, device)
    out = torch.empty((depth, rows, columns), dtype=labels.dtype, device=device)
    for start in range(0, depth, LABEL_SLAB):
        slab = labels.index_select(0, z_index[start : start + LABEL_SLAB])
        # columns first: the element-wise gather then runs on the smaller (source-row) array,
        # and the row gather copies whole rows
        slab = slab.index_select(2, x_index).index_select(1, y_index)
        out[start : start + slab.shape[0]] = slab
    return out
