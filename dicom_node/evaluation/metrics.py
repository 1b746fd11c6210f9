"""Overlap and surface metrics of one structure: Dice, IoU, HD95, volumes.

Pure functions of two boolean masks on the same grid and its voxel spacing (mm, one value per
array axis). The definitions are those of the seed evaluation scripts and MONAI
(`monai.metrics.compute_dice`, `compute_iou`, `compute_hausdorff_distance(percentile=95)`):

- Dice = 2 |P and R| / (|P| + |R|), IoU = |P and R| / |P or R|; both are 1.0 when P and R are empty
  (nothing to find, nothing found).
- Surface voxels of a mask: the mask minus its binary erosion by the 6-connected cross
  (voxels on the array border count as surface). The directed distances from P to R are the
  Euclidean distances, in mm, from each surface voxel of P to the nearest surface voxel of R
  (`scipy.ndimage.distance_transform_edt` with the spacing as sampling).
- HD95 = max(95th percentile of the P→R distances, 95th percentile of the R→P distances)
  (numpy's linear percentile), i.e. the symmetric Hausdorff distance at the 95th percentile.
  It is NaN when either mask is empty: no surface, no distance (shown as "n/a").
- Volumes in ml = voxel count x voxel volume (mm³) / 1000; the difference is prediction minus
  reference, and in percent of the reference (NaN when the reference is empty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "HD_PERCENTILE",
    "OverlapScores",
    "dice",
    "directed_surface_distances",
    "hausdorff_distance_95",
    "iou",
    "score_masks",
    "surface",
]

Mask = npt.NDArray[np.bool_]
HD_PERCENTILE = 95.0


@dataclass(frozen=True)
class OverlapScores:
    """The scores of one structure; NaN where a score is undefined."""

    dice: float
    iou: float
    hd95_mm: float
    prediction_ml: float
    reference_ml: float

    @property
    def volume_difference_ml(self) -> float:
        return self.prediction_ml - self.reference_ml

    @property
    def volume_difference_percent(self) -> float:
        if self.reference_ml == 0:
            return math.nan
        return 100.0 * self.volume_difference_ml / self.reference_ml


def dice(prediction: Mask, reference: Mask) -> float:
    """Sørensen-Dice coefficient; 1.0 when both masks are empty."""
    both = int(np.count_nonzero(prediction & reference))
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(reference))
    return 1.0 if total == 0 else 2.0 * both / total


def iou(prediction: Mask, reference: Mask) -> float:
    """Intersection over union (Jaccard index); 1.0 when both masks are empty."""
    both = int(np.count_nonzero(prediction & reference))
    union = int(np.count_nonzero(prediction | reference))
    return 1.0 if union == 0 else both / union


def surface(mask: Mask) -> Mask:
    """The voxels of `mask` with a 6-neighbour outside it (the array border is outside)."""
    eroded: Mask = ndimage.binary_erosion(mask)
    return mask & ~eroded


def directed_surface_distances(
    source: Mask, target: Mask, spacing: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Distances (mm) from every surface voxel of `source` to the nearest surface voxel of
    `target`; both masks non-empty and on the same grid."""
    to_target: npt.NDArray[np.float64] = ndimage.distance_transform_edt(
        ~surface(target), sampling=tuple(spacing)
    )
    return to_target[surface(source)]


def hausdorff_distance_95(prediction: Mask, reference: Mask, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm; NaN when either mask is empty."""
    if not prediction.any() or not reference.any():
        return math.nan
    # Distances only depend on the voxels around both masks: crop to their joint bounding box,
    # one voxel wider so that the crop edge does not turn inner voxels into surface.
    box = _padded_box(prediction | reference)
    cropped_prediction, cropped_reference = prediction[box], reference[box]
    forward = directed_surface_distances(cropped_prediction, cropped_reference, spacing)
    backward = directed_surface_distances(cropped_reference, cropped_prediction, spacing)
    return float(max(np.percentile(forward, HD_PERCENTILE), np.percentile(backward, HD_PERCENTILE)))


def score_masks(prediction: Mask, reference: Mask, spacing: Sequence[float]) -> OverlapScores:
    """All scores of one structure."""
    if prediction.shape != reference.shape:
        raise ValueError(f"masks differ in shape: {prediction.shape} and {reference.shape}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return OverlapScores(
        dice=dice(prediction, reference),
        iou=iou(prediction, reference),
        hd95_mm=hausdorff_distance_95(prediction, reference, spacing),
        prediction_ml=int(np.count_nonzero(prediction)) * voxel_ml,
        reference_ml=int(np.count_nonzero(reference)) * voxel_ml,
    )


def _padded_box(mask: Mask) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask, one voxel wider on each side where the array
    allows (padding beyond the array would add nothing: the border is outside already)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        (indices,) = np.nonzero(mask.any(axis=others))
        box.append(slice(max(int(indices[0]) - 1, 0), int(indices[-1]) + 2))
    return tuple(box)
