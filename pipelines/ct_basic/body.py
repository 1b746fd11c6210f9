"""The body outline: the patient without the table, with everything the skin encloses."""

from __future__ import annotations

import cc3d
import numpy as np

from pipelines.ct_basic.geometry import (
    BoolArray,
    FloatArray,
    axial_axis,
    dilate_mm,
    erode_mm,
    fill_holes_in_planes,
)
from pipelines.ct_basic.options import CtBasicOptions
from pipelines.volume import ImageVolume

__all__ = ["segment_body"]


def segment_body(
    hu: FloatArray, volume: ImageVolume, options: CtBasicOptions | None = None
) -> BoolArray:
    """The body mask: the largest dense region, opened in-plane, holes filled slice by slice.

    The in-plane opening cuts attachments thinner than about 2 x `body_opening_mm` (pads,
    cables, blankets); the largest connected region is the patient; it is then grown back
    inside the dense mask by the same radius so that the skin line stays where it was.
    Holes are filled in each axial plane, so lungs, airway and bowel gas are inside the body.
    An empty mask (nothing dense) stays empty. Limit: body parts separated from the trunk by
    air (arms held apart) are not part of the largest region and are left out.
    """
    options = options or CtBasicOptions()
    opening_mm, spacing = options.body_opening_mm, volume.spacing
    axial = axial_axis(volume)
    dense = hu > options.body_threshold_hu
    in_plane = tuple(axis for axis in range(3) if axis != axial)
    opened = dense
    if opening_mm > 0:
        opened = dilate_mm(
            erode_mm(dense, opening_mm, spacing, in_plane), opening_mm, spacing, in_plane
        )
        opened &= dense
    labels = cc3d.connected_components(opened, connectivity=6)
    sizes = np.bincount(labels.ravel())
    if sizes.size < 2:
        return np.zeros(hu.shape, dtype=bool)
    largest = labels == int(np.argmax(sizes[1:]) + 1)
    if opening_mm > 0:
        largest = dilate_mm(largest, opening_mm, spacing, in_plane) & dense
    body: BoolArray = fill_holes_in_planes(largest, axial)
    return body
