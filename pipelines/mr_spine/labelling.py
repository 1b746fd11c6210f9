"""From TotalSpineSeg step outputs to levels: discs numbered, odd discs for step 2, final map.

Step 1's label map (cord, canal, discs, the landmark discs, vertebrae, C1) gives the discs'
levels (:func:`label_discs`) and the odd-disc channel step 2 takes (:func:`odd_disc_mask`).
Step 2's map (discs, landmarks, odd and even vertebrae, sacrum, cord, canal) is numbered the
same way and becomes the final map in TotalSpineSeg's values (:func:`final_label_map`,
``TSS_VALUES``): cord 1, canal 2, C1..L5 11..45, sacrum 50, discs C2-C3..L5-S 63..100, plus two
of ours for parts whose level could not be told (a disc 201, a vertebra 202), so that nothing
the models found is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cc3d
import numpy as np
import numpy.typing as npt

from pipelines.mr_spine.levels import (
    LANDMARK_DISCS,
    DiscNumbering,
    Parity,
    SpineAxis,
    VertebraPart,
    disc_name,
    number_discs,
    number_vertebrae,
    spine_axis,
    vertebra_name,
)
from pipelines.volume import ImageVolume

__all__ = [
    "STEP1",
    "STEP2",
    "TSS_VALUES",
    "UNNUMBERED_DISC",
    "UNNUMBERED_VERTEBRA",
    "DiscLabelling",
    "SpineLabelling",
    "StepClasses",
    "disc_key",
    "final_label_map",
    "label_discs",
    "odd_disc_mask",
    "vertebra_key",
]

SPINAL_CORD, SPINAL_CANAL, SACRUM = 1, 2, 50
UNNUMBERED_DISC, UNNUMBERED_VERTEBRA = 201, 202
_MAX_AXIS_POINTS = 200_000
Labels = npt.NDArray[np.integer]


def disc_key(level: int) -> str:
    """The code-table name of a disc: intervertebral_disc_C2_C3 ... intervertebral_disc_L5_S."""
    return "intervertebral_disc_" + disc_name(level).replace("-", "_")


def vertebra_key(level: int) -> str:
    """The code-table name of a vertebra: vertebrae_C1 ... vertebrae_L5."""
    return f"vertebrae_{vertebra_name(level)}"


def _tss_values() -> dict[str, int]:
    """TotalSpineSeg's final label values (its tss_map), by code-table name."""
    values = {"spinal_cord": SPINAL_CORD, "spinal_canal": SPINAL_CANAL, "sacrum": SACRUM}
    first_vertebra = {"C": 11, "T": 21, "L": 41}
    first_disc = {"C": 63, "T": 72, "L": 92}  # C2-C3, T1-T2, L1-L2
    for level in range(1, 25):
        name = vertebra_name(level)
        values[vertebra_key(level)] = first_vertebra[name[0]] + int(name[1:]) - 1
    for level in range(3, 26):
        upper = vertebra_name(level - 1)
        junctions = {"C7": 71, "T12": 91, "L5": 100}
        offset = 2 if upper[0] == "C" else 1
        value = junctions.get(upper, first_disc[upper[0]] + int(upper[1:]) - offset)
        values[disc_key(level)] = value
    values["intervertebral_disc"] = UNNUMBERED_DISC
    values["vertebrae"] = UNNUMBERED_VERTEBRA
    return values


TSS_VALUES: dict[str, int] = _tss_values()


@dataclass(frozen=True)
class StepClasses:
    """Class values of one step's model. `landmarks`: landmark disc name -> class."""

    disc: int
    landmarks: Mapping[str, int]
    canal: int
    cord: int
    vertebrae: int | None = None  # step 1: all vertebrae but C1
    c1: int | None = None
    odd: int | None = None  # step 2: odd and even vertebrae, sacrum
    even: int | None = None
    sacrum: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.landmarks) - set(LANDMARK_DISCS)
        if unknown:
            raise ValueError(f"unknown landmark discs {sorted(unknown)}")

    @property
    def disc_classes(self) -> list[int]:
        return [self.disc, *self.landmarks.values()]

    @property
    def values(self) -> frozenset[int]:
        """Every class value this step's model outputs."""
        optional = (self.vertebrae, self.c1, self.odd, self.even, self.sacrum)
        named = [*self.disc_classes, self.canal, self.cord, *optional]
        return frozenset(value for value in named if value is not None)


_LANDMARK_CLASSES = {"C2-C3": 2, "C7-T1": 3, "T12-L1": 4, "L5-S": 5}
# TotalSpineSeg's nnunet_step1 and nnunet_step2 maps
STEP1 = StepClasses(disc=1, landmarks=_LANDMARK_CLASSES, canal=8, cord=9, vertebrae=6, c1=7)
STEP2 = StepClasses(disc=1, landmarks=_LANDMARK_CLASSES, canal=10, cord=11, odd=7, even=8, sacrum=9)


@dataclass(frozen=True)
class DiscLabelling:
    """Disc components (26-connected, 1..n), each one's place along the spine and level."""

    components: npt.NDArray[np.uint32]
    positions: dict[int, float]
    levels: dict[int, int | None]
    numbering: DiscNumbering
    axis: SpineAxis | None
    notes: tuple[str, ...] = field(default=())


def _axis(label_map: Labels, volume: ImageVolume, classes: StepClasses) -> SpineAxis | None:
    """The spine's axis through the canal (and cord); without them, through the discs and
    vertebrae; None when the map holds none of them."""
    groups = [[classes.canal, classes.cord], classes.disc_classes]
    groups[1] += [c for c in (classes.vertebrae, classes.c1, classes.odd, classes.even) if c]
    for values in groups:
        indices = np.argwhere(np.isin(label_map, values))
        if len(indices):
            stride = max(1, len(indices) // _MAX_AXIS_POINTS)
            return spine_axis(volume.index_to_world(indices[::stride]))
    return None


def _centres(
    components: npt.NDArray[np.uint32], volume: ImageVolume, axis: SpineAxis
) -> tuple[npt.NDArray[np.int64], dict[int, float]]:
    """Voxel count per component id and each component's position along the axis."""
    statistics = cc3d.statistics(components)
    counts = np.asarray(statistics["voxel_counts"], dtype=np.int64)
    ids = np.flatnonzero(counts[1:]) + 1
    if not len(ids):
        return counts, {}
    places = axis.position(volume.index_to_world(np.asarray(statistics["centroids"])[ids]))
    return counts, {int(i): float(p) for i, p in zip(ids, places, strict=True)}


def label_discs(label_map: Labels, volume: ImageVolume, classes: StepClasses) -> DiscLabelling:
    """Number the discs of one step's label map (on `volume`'s grid) by the landmarks in it."""
    if label_map.shape != volume.shape:
        raise ValueError(f"label map {label_map.shape} is not on the grid {volume.shape}")
    axis = _axis(label_map, volume, classes)
    components = cc3d.connected_components(
        np.isin(label_map, classes.disc_classes), connectivity=26
    ).astype(np.uint32)
    if axis is None:
        empty = number_discs(0, {})
        return DiscLabelling(components, {}, {}, empty, None)
    counts, positions = _centres(components, volume, axis)
    order = sorted(positions, key=lambda component: positions[component])
    index_of = {component: k for k, component in enumerate(order)}
    landmarks, notes = _landmarks(label_map, components, counts, classes, index_of)
    c1_above = None
    if classes.c1 is not None and np.any(label_map == classes.c1):
        c1_centre = volume.index_to_world(_centroid(label_map == classes.c1))
        c1_place = float(axis.position(c1_centre)[0])
        below = [k for k, component in enumerate(order) if positions[component] > c1_place]
        c1_above = below[0] if below else None
    numbering = number_discs(len(order), landmarks, c1_above)
    levels = {component: numbering.levels[index_of[component]] for component in order}
    return DiscLabelling(components, positions, levels, numbering, axis, tuple(notes))


def _centroid(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    centre: npt.NDArray[np.float64] = np.argwhere(mask).mean(axis=0)
    return centre


def _landmarks(
    label_map: Labels,
    components: npt.NDArray[np.uint32],
    counts: npt.NDArray[np.int64],
    classes: StepClasses,
    index_of: Mapping[int, int],
) -> tuple[dict[str, int], list[str]]:
    """Landmark name -> disc index: a component is a landmark when that landmark's class
    holds at least half of its voxels; of two components of one landmark the larger counts."""
    found: dict[str, int] = {}
    notes: list[str] = []
    for name, value in classes.landmarks.items():
        votes = np.bincount(components[label_map == value], minlength=len(counts))
        votes[0] = 0
        candidates = [int(c) for c in np.flatnonzero(2 * votes >= counts) if votes[c] > 0]
        if not candidates:
            continue
        chosen = max(candidates, key=lambda component: int(votes[component]))
        if len(candidates) > 1:
            notes.append(f"{len(candidates)} parts look like disc {name}: the largest is taken")
        found[name] = index_of[chosen]
    return found, notes


def odd_disc_mask(labelling: DiscLabelling) -> npt.NDArray[np.bool_]:
    """The discs of odd level (C2-C3, C4-C5, ...): step 2's second input channel."""
    odd = [component for component, level in labelling.levels.items() if level and level % 2]
    return np.isin(labelling.components, odd)


@dataclass(frozen=True)
class SpineLabelling:
    """The final map (TSS_VALUES), the levels found, what anchored them, and notes."""

    label_map: npt.NDArray[np.uint8]
    disc_levels: tuple[int, ...]
    vertebra_levels: tuple[int, ...]
    anchors: tuple[str, ...]
    notes: tuple[str, ...]


def final_label_map(
    label_map: Labels, volume: ImageVolume, classes: StepClasses = STEP2
) -> SpineLabelling:
    """Step 2's map numbered: discs by landmarks, vertebrae by the discs around them."""
    discs = label_discs(label_map, volume, classes)
    out = np.zeros(label_map.shape, dtype=np.uint8)
    out[label_map == classes.canal] = SPINAL_CANAL
    out[label_map == classes.cord] = SPINAL_CORD
    if classes.sacrum is not None:
        out[label_map == classes.sacrum] = SACRUM
    notes = list(discs.notes) + list(discs.numbering.notes)
    disc_value = np.zeros(int(discs.components.max()) + 1, dtype=np.uint8)
    for component, level in discs.levels.items():
        disc_value[component] = UNNUMBERED_DISC if level is None else TSS_VALUES[disc_key(level)]
    painted = discs.components > 0
    out[painted] = disc_value[discs.components[painted]]

    kinds = _vertebra_parts(label_map, volume, classes, discs.axis)
    parts = [part for _, found in kinds for _, part in found]
    ordered = sorted(
        ((discs.positions[c], level) for c, level in discs.levels.items()),
        key=lambda disc: disc[0],
    )
    levels, vertebra_notes = number_vertebrae(parts, ordered)
    notes += vertebra_notes
    numbered = iter(levels)
    for components, found in kinds:
        value = np.zeros(int(components.max()) + 1, dtype=np.uint8)
        for component, _ in found:
            level = next(numbered)
            value[component] = (
                UNNUMBERED_VERTEBRA if level is None else TSS_VALUES[vertebra_key(level)]
            )
        painted = value[components] > 0
        out[painted] = value[components[painted]]
    return SpineLabelling(
        out,
        tuple(sorted({level for level in discs.levels.values() if level is not None})),
        tuple(sorted({level for level in levels if level is not None})),
        discs.numbering.anchors,
        tuple(notes),
    )


def _vertebra_parts(
    label_map: Labels, volume: ImageVolume, classes: StepClasses, axis: SpineAxis | None
) -> list[tuple[npt.NDArray[np.uint32], list[tuple[int, VertebraPart]]]]:
    """Per vertebra class, its connected parts (26-connected) and each part's place along the
    axis and parity (step 2's odd and even classes; step 1's vertebrae and C1 have none)."""
    if classes.odd is not None and classes.even is not None:
        kinds: list[tuple[int, Parity]] = [(classes.odd, "odd"), (classes.even, "even")]
    else:
        kinds = [(c, None) for c in (classes.vertebrae, classes.c1) if c is not None]
    found: list[tuple[npt.NDArray[np.uint32], list[tuple[int, VertebraPart]]]] = []
    if axis is None:
        return found
    for value, parity in kinds:
        components: npt.NDArray[np.uint32] = cc3d.connected_components(
            label_map == value, connectivity=26
        ).astype(np.uint32)
        _, positions = _centres(components, volume, axis)
        parts = [(c, VertebraPart(place, parity)) for c, place in sorted(positions.items())]
        found.append((components, parts))
    return found
