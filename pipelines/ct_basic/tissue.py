"""Bone and adipose tissue inside the body, by HU windows and connectivity."""

from __future__ import annotations

import cc3d
import numpy as np

from pipelines.ct_basic.geometry import (
    BoolArray,
    FloatArray,
    HuArray,
    axial_axis,
    bounding_box,
    dilate_mm,
    fill_holes_in_planes,
)
from pipelines.ct_basic.options import CtBasicOptions
from pipelines.volume import ImageVolume

__all__ = ["segment_adipose_tissue", "segment_bone"]

# Marrow enclosed by cortical bone in an axial plane is at most this large (a lumbar vertebral
# body, a femoral shaft); larger enclosed regions are body cavities ringed by bone (the pelvis).
_MAX_MARROW_HOLE_MM2 = 3000.0


def segment_bone(
    hu: HuArray,
    volume: ImageVolume,
    body: BoolArray,
    options: CtBasicOptions | None = None,
) -> BoolArray:
    """Bone: dense voxels connected to cortical-density voxels, with marrow holes filled.

    Hysteresis (`bone_threshold_hu` grown from `bone_seed_hu`) keeps cancellous bone and
    drops soft-tissue noise, unmineralised cartilage and small calcifications below the seed
    density. In each axial plane, holes up to `max_bone_hole_mm2` are filled, and holes up to
    3000 mm2 whose mean is marrow rather than soft tissue: fatty (below `adipose_max_hu`,
    yellow marrow) or above `marrow_min_hu` (cancellous bone under the threshold). The spinal
    canal (cord and fluid, soft-tissue density) stays open.
    """
    options = options or CtBasicOptions()
    bone = np.zeros(hu.shape, dtype=bool)
    box = bounding_box(body)
    if box is None:
        return bone
    hu_box = hu[box]
    dense = (hu_box >= options.bone_threshold_hu) & body[box]
    labels, count = cc3d.connected_components(dense, connectivity=26, return_N=True)
    if count == 0:
        return bone
    seeded = np.zeros(count + 1, dtype=bool)
    seeded[np.unique(labels[hu_box >= options.bone_seed_hu])] = True
    seeded[0] = False
    found = seeded[labels]
    axial = axial_axis(volume)
    pixel_area = float(np.prod([volume.spacing[a] for a in range(3) if a != axial]))
    bone[box] = fill_holes_in_planes(
        found,
        axial,
        pixel_area_mm2=pixel_area,
        max_area_mm2=options.max_bone_hole_mm2,
        values=hu_box,
        keep_if_mean_within=(options.adipose_max_hu, options.marrow_min_hu),
        max_rule_area_mm2=_MAX_MARROW_HOLE_MM2,
    )
    bone &= body
    return bone


def segment_adipose_tissue(
    hu: FloatArray,
    volume: ImageVolume,
    body: BoolArray,
    options: CtBasicOptions | None = None,
) -> BoolArray:
    """Fat: voxels in the adipose window inside the body, away from air boundaries.

    Voxels next to air (below `lung_threshold_hu`) are left out: at an air/tissue edge the
    partial volume passes through the fat window without being fat. The margin is one voxel
    plus the smoothing width.
    """
    options = options or CtBasicOptions()
    fat = np.zeros(hu.shape, dtype=bool)
    box = bounding_box(body)
    if box is None:
        return fat
    hu_box = hu[box]
    window = (hu_box >= options.adipose_min_hu) & (hu_box <= options.adipose_max_hu) & body[box]
    air = (hu_box < options.lung_threshold_hu) | ~body[box]
    margin_mm = 1.5 * options.smoothing_sigma_mm
    fat[box] = window & ~dilate_mm(air, margin_mm, volume.spacing, minimum_voxels=1)
    return fat
