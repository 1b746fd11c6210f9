"""Label-map clean-up shared by the model pipelines: connected components, crop boxes, islands.

Components are those of cc3d (26-connected unless said otherwise: voxels touching by a face, an
edge or a corner belong together, the usual choice for segmentation clean-up). Borders between
components are counted as 6-connected voxel face pairs (two voxels sharing a face), which is the
contact area in voxel faces. Every function returns what it changed, so pipelines can say it
(DESIGN: never lose data silently).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import cc3d
import numpy as np
import numpy.typing as npt

__all__ = [
    "ComponentFilter",
    "Connectivity",
    "IslandChange",
    "IslandRepair",
    "bounding_box",
    "largest_component",
    "margin_voxels",
    "remove_small_components",
    "repair_islands",
]

Connectivity = Literal[6, 18, 26]
BoolArray = npt.NDArray[np.bool_]
Box = tuple[slice, slice, slice]


def largest_component(mask: BoolArray, connectivity: Connectivity = 26) -> BoolArray:
    """The largest connected component of `mask` (all False when `mask` is empty); ties go to
    the component met first in C order."""
    components, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    result: BoolArray = components == int(np.argmax(sizes))
    return result


@dataclass(frozen=True, eq=False)
class ComponentFilter:
    """What `remove_small_components` kept and dropped."""

    mask: BoolArray  # the components kept
    kept_sizes: tuple[int, ...]  # voxels per kept component, largest first
    removed_components: int
    removed_voxels: int


def remove_small_components(
    mask: BoolArray, min_voxels: int, connectivity: Connectivity = 26
) -> ComponentFilter:
    """`mask` without its connected components of fewer than `min_voxels` voxels."""
    components, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    kept: BoolArray = keep[components]
    dropped = ~keep[1:]
    return ComponentFilter(
        mask=kept,
        kept_sizes=tuple(sorted((int(size) for size in sizes[1:][keep[1:]]), reverse=True)),
        removed_components=int(np.count_nonzero(dropped)),
        removed_voxels=int(sizes[1:][dropped].sum()),
    )


def margin_voxels(margin_mm: float, spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    """A margin in millimetres as whole voxels per axis, rounded up (never less than asked)."""
    first, second, third = (math.ceil(margin_mm / step - 1e-9) for step in spacing)
    return first, second, third


def bounding_box(mask: BoolArray, margin: Sequence[int] = (0, 0, 0)) -> Box | None:
    """The smallest box holding every True voxel of the 3D `mask`, grown by `margin` voxels per
    axis and clipped to the array; None when `mask` is empty."""
    if not mask.any():
        return None
    box = []
    for axis, grow in enumerate(margin):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        start = max(int(present[0]) - grow, 0)
        stop = min(int(present[-1]) + 1 + grow, mask.shape[axis])
        box.append(slice(start, stop))
    first, second, third = box
    return first, second, third


@dataclass(frozen=True)
class IslandChange:
    """Voxels of islands of `label` that became `to_label` (0: removed)."""

    label: int
    to_label: int
    voxels: int
    islands: int


@dataclass(frozen=True, eq=False)
class IslandRepair:
    label_map: npt.NDArray[np.integer]
    changes: tuple[IslandChange, ...]  # sorted by label, then to_label

    @property
    def reassigned_voxels(self) -> int:
        return sum(change.voxels for change in self.changes if change.to_label != 0)

    @property
    def removed_voxels(self) -> int:
        return sum(change.voxels for change in self.changes if change.to_label == 0)


def repair_islands(
    label_map: npt.NDArray[np.integer],
    keep_fractions: Mapping[int, float],
    min_island_voxels: int,
    connectivity: Connectivity = 26,
) -> IslandRepair:
    """Clean up the labels that are keys of `keep_fractions` (e.g. bones); others are untouched.

    Per repaired label, its largest connected component is kept, and so is every other
    component of at least `keep_fractions[label]` times its size (structures that are several
    pieces: hands, feet). The remaining components are islands. Smallest island first, each
    island that shares a border (6-connected faces) with other repaired labels becomes the label
    sharing the largest border (ties: the lower label value); labels given earlier to other
    islands count, so two islands never swap labels. An island touching no other repaired
    label is removed when it has fewer than `min_island_voxels` voxels and kept otherwise.

    This is the costovertebral repair: a piece of rib the model called vertebra (or the other
    way round) is an island of the wrong label glued to the right one. Reassignment stays
    within the repaired labels because a misnamed piece of bone is still bone.
    """
    fractions = {int(label): float(fraction) for label, fraction in keep_fractions.items()}
    if not fractions or label_map.size == 0:
        return IslandRepair(label_map.copy(), ())
    top = max(int(label_map.max()), *fractions)
    repaired = np.zeros(top + 1, dtype=bool)
    repaired[[label for label in fractions if label > 0]] = True
    in_scope = repaired[label_map]
    box = bounding_box(in_scope)
    if box is None:
        return IslandRepair(label_map.copy(), ())
    scope = in_scope[box]
    region = np.ascontiguousarray(np.where(scope, label_map[box], 0))
    components, count = cc3d.connected_components(region, connectivity=connectivity, return_N=True)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    original = np.zeros(count + 1, dtype=np.int64)
    original[components[scope]] = region[scope]

    islands = _islands(original, sizes, fractions)
    if not islands:
        return IslandRepair(label_map.copy(), ())
    neighbours = _face_contacts(components)
    current = original.copy()
    for island in sorted(islands, key=lambda c: (int(sizes[c]), c)):
        border: dict[int, int] = defaultdict(int)
        for other, faces in neighbours.get(island, ()):
            label = int(current[other])
            if label not in (0, int(current[island])):
                border[label] += faces
        if border:
            current[island] = min(border, key=lambda label: (-border[label], label))
        elif sizes[island] < min_island_voxels:
            current[island] = 0

    changed = np.flatnonzero(current != original)
    tally: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for component in changed:
        entry = tally[(int(original[component]), int(current[component]))]
        entry[0] += int(sizes[component])
        entry[1] += 1
    result = label_map.copy()
    if changed.size:
        window = result[box]
        window[scope] = current[components[scope]].astype(result.dtype)
    changes = tuple(
        IslandChange(label, to_label, voxels, islands_count)
        for (label, to_label), (voxels, islands_count) in sorted(tally.items())
    )
    return IslandRepair(result, changes)


def _islands(
    labels: npt.NDArray[np.int64], sizes: npt.NDArray[np.intp], fractions: Mapping[int, float]
) -> list[int]:
    """Components (ids) that are neither the largest of their label nor large enough to keep."""
    islands: list[int] = []
    order = np.argsort(labels[1:], kind="stable") + 1
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for group in np.split(order, bounds):
        if group.size < 2:
            continue
        largest = int(group[np.argmax(sizes[group])])
        minimum = fractions[int(labels[largest])] * float(sizes[largest])
        islands += [int(c) for c in group if c != largest and float(sizes[c]) < minimum]
    return islands


def _face_contacts(
    components: npt.NDArray[np.integer],
) -> dict[int, list[tuple[int, int]]]:
    """Component id -> [(touching component id, number of shared voxel faces)]."""
    neighbours: dict[int, list[tuple[int, int]]] = defaultdict(list)
    contacts = cc3d.contacts(components, connectivity=6, surface_area=False)
    for (first, second), faces in contacts.items():
        neighbours[int(first)].append((int(second), int(faces)))
        neighbours[int(second)].append((int(first), int(faces)))
    return neighbours
