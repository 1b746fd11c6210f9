"""Lungs (left and right) and the central airway, from air inside the body.

Lungs are the large air-filled regions inside the body whose voxels are mostly lung parenchyma
rather than pure gas (bowel and stomach gas sit near -1000 HU, aerated lung near -850 HU).
The airway is the tube of pure air that comes down from above the lungs near the midline:
trachea and main bronchi, plus the bronchi that connect to them below the airway threshold.
Left and right are decided in patient coordinates (LPS: +x is the patient's left), never by
array index, so any orientation and patient position gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipelines.ct_basic.geometry import (
    BoolArray,
    FloatArray,
    IndexBox,
    axial_axis,
    bounding_box,
    dilate_mm,
    fill_holes_in_planes,
    superior_sign,
)
from pipelines.ct_basic.options import CtBasicOptions
from pipelines.volume import ImageVolume

__all__ = [
    "LungSegmentation",
    "find_lung_regions",
    "segment_airway",
    "segment_lungs_and_airway",
    "split_left_right",
]

# Soft tissue enclosed by a lung in an axial plane up to this size is lung (vessels, small
# nodules); larger islands are the top of the diaphragm dome or the heart seen through a base.
_MAX_LUNG_HOLE_MM2 = 300.0
# How far from the body's midline the airway may run, and how close to the lung apex its top
# must reach (the trachea comes down from the neck).
_AIRWAY_MIDLINE_MM = 30.0
_AIRWAY_APEX_MM = 15.0
# Each retry after an airway leak lowers the threshold by this much, down to pure air.
_AIRWAY_STEP_HU = 25.0
_PURE_AIR_HU = -1000.0
# A region crossing the midline with at least this share on each side is two touching lungs.
_STRADDLE_FRACTION = 0.1
_MAX_SPLIT_EROSION_MM = 15.0
_MIN_LUNG_PIECE_MM3 = 500.0


@dataclass(frozen=True, eq=False)
class LungSegmentation:
    lung_left: BoolArray
    lung_right: BoolArray
    airway: BoolArray
    notes: tuple[str, ...]


def segment_lungs_and_airway(
    hu: FloatArray,
    volume: ImageVolume,
    body: BoolArray,
    options: CtBasicOptions | None = None,
) -> LungSegmentation:
    """Left lung, right lung and airway masks on the volume's grid (disjoint)."""
    options = options or CtBasicOptions()
    empty = np.zeros(hu.shape, dtype=bool)
    lungs = find_lung_regions(hu, volume, body, options)
    if not lungs.any():
        return LungSegmentation(empty, empty, empty, ("no lungs in the field of view",))
    notes: list[str] = []
    midline_x = _body_midline_x(volume, body, lungs)
    airway = segment_airway(hu, volume, body, lungs, midline_x, options)
    if airway is None:
        airway = empty
        notes.append("no airway found above or between the lungs")
    left, right = split_left_right(lungs & ~airway, volume, midline_x)
    axial = axial_axis(volume)
    pixel_area = _pixel_area(volume, axial)
    left = _fill_vessels(left, axial, pixel_area) & ~airway
    right = _fill_vessels(right, axial, pixel_area) & ~airway & ~left
    for side, mask in (("left", left), ("right", right)):
        if not mask.any():
            notes.append(f"no {side} lung found")
    return LungSegmentation(left, right, airway, tuple(notes))


def find_lung_regions(
    hu: FloatArray,
    volume: ImageVolume,
    body: BoolArray,
    options: CtBasicOptions | None = None,
) -> BoolArray:
    """Air-filled regions inside the body that are lung (both lungs and the airway joined)."""
    options = options or CtBasicOptions()
    lungs = np.zeros(hu.shape, dtype=bool)
    box = bounding_box(body)
    if box is None:
        return lungs
    hu_box = hu[box]
    low = (hu_box < options.lung_threshold_hu) & body[box]
    labels, count = cc3d.connected_components(low, connectivity=6, return_N=True)
    if count == 0:
        return lungs
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    gas = np.bincount(labels[hu_box < options.gas_threshold_hu], minlength=count + 1)
    sums = np.bincount(labels.ravel(), weights=hu_box.ravel(), minlength=count + 1)
    volume_ml = sizes * volume.voxel_volume_mm3 / 1000.0
    gas_fraction = gas / np.maximum(sizes, 1)
    mean_hu = sums / np.maximum(sizes, 1)
    # Mostly parenchyma, or so large (and not gas on average) that it can only be lung
    # (emphysema, or noise from a sharp kernel, can push many lung voxels below the gas line).
    parenchyma = gas_fraction <= options.max_lung_gas_fraction
    certain = (volume_ml >= options.certain_lung_volume_ml) & (mean_hu > options.gas_threshold_hu)
    is_lung = (volume_ml >= options.min_lung_volume_ml) & (parenchyma | certain)
    is_lung[0] = False
    lungs[box] = is_lung[labels]
    return lungs


def segment_airway(
    hu: FloatArray,
    volume: ImageVolume,
    body: BoolArray,
    lungs: BoolArray,
    midline_x: float,
    options: CtBasicOptions | None = None,
) -> BoolArray | None:
    """Trachea and main bronchi: pure air coming down near the midline to the lungs, or None.

    The first threshold is `airway_threshold_hu`; when the region found is larger than
    `max_airway_volume_ml` it has leaked into the lungs and the threshold is lowered.
    """
    options = options or CtBasicOptions()
    axial = axial_axis(volume)
    # Where the lung tissue is (not the air of a trachea joined to it), in mm towards the head:
    # its top, and its volume centre (the airway lies above that even when the scan ends
    # half-way down the lungs).
    parenchyma = lungs & (hu >= options.gas_threshold_hu)
    per_slice = parenchyma.sum(axis=tuple(a for a in range(3) if a != axial))
    if not per_slice.any():
        return None
    height = superior_sign(volume) * np.arange(per_slice.size) * volume.spacing[axial]
    lung_top = float(height[per_slice > 0].max())
    lung_middle = float(np.average(height, weights=per_slice))
    box = bounding_box(body)
    if box is None:
        return None
    threshold = options.airway_threshold_hu
    while threshold >= _PURE_AIR_HU:
        air = (hu[box] < threshold) & body[box]
        found = _airway_component(air, volume, box, lung_top, lung_middle, midline_x, options)
        if found is None:
            return None
        component, volume_ml = found
        if volume_ml <= options.max_airway_volume_ml:
            airway = np.zeros(hu.shape, dtype=bool)
            airway[box] = component
            return _with_rim(airway, hu, volume, threshold, options)
        threshold -= _AIRWAY_STEP_HU
    return None


def _with_rim(
    airway: BoolArray,
    hu: FloatArray,
    volume: ImageVolume,
    threshold: float,
    options: CtBasicOptions,
) -> BoolArray:
    """The airway core plus the lumen voxels at its edge that the thresholds missed.

    Smoothing lifts air next to the wall above the airway threshold (up to about 1.7 sigma
    in): those voxels are taken back where the unsmoothed value is still below it (at least
    one voxel deep, as any blur reaches the next voxel). Where voxels are finer than the
    smoothing, the partial-volume rim that is still below the lung threshold is airway too;
    otherwise it would stay behind as a thin lung shell around the trachea.
    """
    reach = 2.0 * options.smoothing_sigma_mm
    near = bounding_box(airway, margin=int(reach // min(volume.spacing)) + 2)
    if near is None or reach <= 0:
        return airway
    core = airway[near]
    partial = dilate_mm(core, reach, volume.spacing) & (hu[near] < options.lung_threshold_hu)
    blurred = dilate_mm(core, reach, volume.spacing, minimum_voxels=1)
    blurred &= np.asarray(volume.array[near]) < threshold
    airway[near] |= partial | blurred
    return airway


def _airway_component(
    air: BoolArray,
    volume: ImageVolume,
    box: IndexBox,
    lung_top: float,
    lung_middle: float,
    midline_x: float,
    options: CtBasicOptions,
) -> tuple[BoolArray, float] | None:
    """The largest trachea-like component of `air` (cropped to `box`) and its volume in ml."""
    labels = cc3d.connected_components(air, connectivity=6)
    stats = cc3d.statistics(labels, no_slice_conversion=True)
    counts = np.asarray(stats["voxel_counts"], dtype=np.float64)
    if counts.size < 2:
        return None
    axial = axial_axis(volume)
    sign = superior_sign(volume)
    offset = np.array([s.start for s in box], dtype=np.float64)
    centroids = np.asarray(stats["centroids"], dtype=np.float64) + offset
    bounds = np.asarray(stats["bounding_boxes"], dtype=np.float64).reshape(-1, 3, 2)
    ends = (bounds[:, axial, :] + offset[axial]) * sign * volume.spacing[axial]
    top, length = ends.max(axis=1), np.ptp(ends, axis=1) + volume.spacing[axial]
    centre_height = centroids[:, axial] * sign * volume.spacing[axial]
    centre_x = _index_to_x(volume, centroids)
    volume_ml = counts * volume.voxel_volume_mm3 / 1000.0
    # A tube at least this long, coming down to the lung apex or from above it, centred above
    # the middle of the lung tissue, near the midline.
    candidate = (
        (length >= options.min_airway_length_mm)
        & (top >= lung_top - _AIRWAY_APEX_MM)
        & (centre_height >= lung_middle)
        & (np.abs(centre_x - midline_x) <= _AIRWAY_MIDLINE_MM)
    )
    candidate[0] = False
    if not candidate.any():
        return None
    best = int(np.argmax(np.where(candidate, counts, -1.0)))
    return labels == best, float(volume_ml[best])


def split_left_right(
    lungs: BoolArray, volume: ImageVolume, midline_x: float
) -> tuple[BoolArray, BoolArray]:
    """(left, right): each connected lung region goes to the side of the midline it lies on.

    A region with a real share on both sides (lungs touching at the anterior junction) is
    eroded until it falls apart into a left and a right core, which then grow back; if it
    never falls apart, the midline plane (x = `midline_x`) cuts it.
    """
    left = np.zeros(lungs.shape, dtype=bool)
    right = np.zeros(lungs.shape, dtype=bool)
    box = bounding_box(lungs)
    if box is None:
        return left, right
    region = lungs[box]
    on_left = _x_grid(volume, box, region.shape) > midline_x
    labels, count = cc3d.connected_components(region, connectivity=6, return_N=True)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    # Slivers cut off by removing the airway (its wall's partial volume) are no lung.
    sizes[sizes * volume.voxel_volume_mm3 < _MIN_LUNG_PIECE_MM3] = 0
    left_share = np.bincount(labels[on_left], minlength=count + 1) / np.maximum(sizes, 1)
    left_box, right_box = left[box], right[box]
    for label in np.flatnonzero(sizes[1:]) + 1:
        share = left_share[label]
        if share >= 1 - _STRADDLE_FRACTION:
            left_box |= labels == label
        elif share <= _STRADDLE_FRACTION:
            right_box |= labels == label
        else:
            component = labels == label
            part_left, part_right = _split_component(component, on_left, volume)
            left_box |= part_left
            right_box |= part_right
    return left, right


def _split_component(
    component: BoolArray, on_left: BoolArray, volume: ImageVolume
) -> tuple[BoolArray, BoolArray]:
    """Erode until two cores lie on opposite sides, then grow them back inside `component`."""
    structure = ndimage.generate_binary_structure(3, 1)
    total = int(component.sum())
    core = component
    steps = max(1, int(_MAX_SPLIT_EROSION_MM // min(volume.spacing)))
    for step in range(1, steps + 1):
        core = ndimage.binary_erosion(core, structure)
        labels, count = cc3d.connected_components(core, connectivity=6, return_N=True)
        if count < 2:
            if count == 0:
                break
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        first, second = np.argsort(sizes)[::-1][:2]
        if sizes[second] < 0.05 * total:
            continue
        seed_a, seed_b = labels == first, labels == second
        a_left = np.count_nonzero(seed_a & on_left) * 2 > sizes[first]
        b_left = np.count_nonzero(seed_b & on_left) * 2 > sizes[second]
        if a_left == b_left:
            continue
        grown_a, grown_b = _grow_apart(seed_a, seed_b, component, step + 1, structure)
        rest = component & ~grown_a & ~grown_b
        seed_left, seed_right = (grown_a, grown_b) if a_left else (grown_b, grown_a)
        return seed_left | (rest & on_left), seed_right | (rest & ~on_left)
    return component & on_left, component & ~on_left


def _grow_apart(
    a: BoolArray, b: BoolArray, within: BoolArray, steps: int, structure: BoolArray
) -> tuple[BoolArray, BoolArray]:
    """Grow two disjoint seeds in turns inside `within`; a voxel goes to whichever gets it first."""
    for _ in range(steps):
        free = within & ~a & ~b
        grown_a = ndimage.binary_dilation(a, structure) & free
        grown_b = ndimage.binary_dilation(b, structure) & free & ~grown_a
        if not grown_a.any() and not grown_b.any():
            break
        a, b = a | grown_a, b | grown_b
    return a, b


def _fill_vessels(lung: BoolArray, axial: int, pixel_area_mm2: float) -> BoolArray:
    box = bounding_box(lung)
    if box is None:
        return lung
    filled = lung.copy()
    filled[box] = fill_holes_in_planes(
        lung[box], axial, pixel_area_mm2=pixel_area_mm2, max_area_mm2=_MAX_LUNG_HOLE_MM2
    )
    return filled


def _pixel_area(volume: ImageVolume, axial: int) -> float:
    return float(np.prod([volume.spacing[a] for a in range(3) if a != axial]))


def _body_midline_x(volume: ImageVolume, body: BoolArray, lungs: BoolArray) -> float:
    """Patient x (mm) of the body's centre over the slices that hold lung."""
    axial = axial_axis(volume)
    in_plane = tuple(a for a in range(3) if a != axial)
    lung_slices = np.flatnonzero(lungs.any(axis=in_plane))
    chosen = np.take(body, lung_slices, axis=axial)
    box = bounding_box(chosen, margin=0)
    if box is None:
        return float(volume.origin[0])
    indices = [np.arange(s.start, s.stop, dtype=np.float64) for s in box]
    weights = chosen[box].astype(np.float64)
    total = weights.sum()
    centre = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        centre.append(float((weights.sum(axis=other) * indices[axis]).sum() / total))
    centre[axial] = float(np.mean(lung_slices))
    return float(_index_to_x(volume, np.asarray([centre]))[0])


def _index_to_x(volume: ImageVolume, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Patient x (mm) of (slice, row, column) points, shape (n, 3)."""
    return volume.index_to_world(points)[:, 0]


def _x_grid(volume: ImageVolume, box: IndexBox, shape: tuple[int, ...]) -> FloatArray:
    """Patient x (mm) of every voxel in `box`, built by broadcasting (no index arrays)."""
    x: FloatArray = np.full(shape, volume.origin[0], dtype=np.float32)
    for axis, part in enumerate(box):
        step = volume.spacing[axis] * volume.direction[axis][0]
        if step != 0.0:
            index = np.arange(part.start, part.stop, dtype=np.float32) * np.float32(step)
            view = [1, 1, 1]
            view[axis] = index.size
            x = x + index.reshape(view)
    return x
