"""Tumor measurements: components, sizes and the longest axial diameter (RECIST-style).

The longest axial diameter of a lesion is its largest in-plane extent on any axial slice
(RECIST 1.1 measures lesions in the axial plane). It is measured here as the largest distance
between the centres of two lesion voxels in the same axial plane, in millimetres of patient
space (so it is up to about one voxel shorter than an edge-to-edge caliper).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from pipelines.volume import ImageVolume

__all__ = ["TumorStatistics", "longest_axial_diameter_mm", "tumor_statistics"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TumorStatistics:
    count: int
    total_voxels: int
    largest_voxels: int  # 0 when there is no tumor
    largest_diameter_mm: float  # longest axial diameter of the largest tumor; 0 when none


def tumor_statistics(tumor: BoolArray, volume: ImageVolume) -> TumorStatistics:
    """Count (26-connected components), sizes and the largest tumor's longest axial diameter."""
    components, count = cc3d.connected_components(
        np.ascontiguousarray(tumor, dtype=np.uint8), connectivity=26, return_N=True
    )
    if count == 0:
        return TumorStatistics(0, 0, 0, 0.0)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    return TumorStatistics(
        count=int(count),
        total_voxels=int(sizes.sum()),
        largest_voxels=int(sizes[largest]),
        largest_diameter_mm=longest_axial_diameter_mm(components == largest, volume),
    )


def longest_axial_diameter_mm(mask: BoolArray, volume: ImageVolume) -> float:
    """The largest centre-to-centre distance between two voxels of `mask` in one axial plane.

    The axial planes are the planes of the array axis most nearly along the patient's
    head-foot (LPS z) axis: the slices of an axial stack, the rows of a coronal or sagittal
    one. Distances are taken between voxel centres projected onto the patient's axial (x, y)
    plane, so a coronal or sagittal stack is measured in patient axial planes too; for an
    oblique stack the plane is the nearest array plane, projected.
    """
    indices = np.argwhere(mask)
    if len(indices) < 2:
        return 0.0
    axis = int(np.argmax(np.abs(np.asarray(volume.direction, dtype=float)[:, 2])))
    points = volume.index_to_world(indices)[:, :2]
    planes = indices[:, axis]
    order = np.argsort(planes, kind="stable")
    bounds = np.flatnonzero(np.diff(planes[order])) + 1
    return max(_longest_distance(points[group]) for group in np.split(order, bounds))


def _longest_distance(points: npt.NDArray[np.float64]) -> float:
    """The diameter of a 2D point set: the farthest pair lies on its convex hull."""
    if len(points) < 2:
        return 0.0
    candidates = points
    if len(points) > 3:
        try:
            candidates = points[ConvexHull(points).vertices]
        except QhullError:  # all points on one line: every point is a candidate
            candidates = points
    return float(pdist(candidates).max())
