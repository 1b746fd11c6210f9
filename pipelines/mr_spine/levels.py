"""Vertebral levels from TotalSpineSeg-style segmentations (our implementation of its labelling).

Numbering (TotalSpineSeg's ``levels_maps``, SCT's disc convention): vertebrae C1..C7 are 1..7,
T1..T12 8..19, L1..L5 20..24; disc ``n`` lies between vertebra ``n - 1`` and vertebra ``n``, so
C2-C3 is 3, C7-T1 8, T12-L1 20 and L5-S 25 (below it, the sacrum). There is no disc 2 (C1-C2).

1. Every part is placed along the spine: a curve through the spinal canal (centroids of the
   canal in 5 mm steps along its main axis, in patient millimetres, so the array's orientation
   does not matter), each part at the arc length of its centroid's nearest point, from the
   superior end.
2. :func:`number_discs`: the discs in that order are counted from the landmark discs the model
   found (C2-C3, C7-T1, T12-L1, L5-S) and C1 (the first disc below C1 is C2-C3). Landmarks that
   contradict the order are dropped; where two landmarks disagree on the count between them
   (a disc missed or split), each disc is counted from its nearer landmark. Every such decision
   is a note.
3. :func:`number_vertebrae`: a vertebra below disc ``n`` is vertebra ``n``; where several
   vertebra parts lie between two discs, or beyond the first or last disc, consecutive parts of
   the same parity (TotalSpineSeg's step 2 tells odd from even vertebrae) are one vertebra, and
   parity changes step the level.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "LANDMARK_DISCS",
    "DiscNumbering",
    "Parity",
    "SpineAxis",
    "VertebraPart",
    "disc_name",
    "number_discs",
    "number_vertebrae",
    "spine_axis",
    "vertebra_name",
]

LANDMARK_DISCS: dict[str, int] = {"C2-C3": 3, "C7-T1": 8, "T12-L1": 20, "L5-S": 25}
FIRST_DISC, LAST_DISC = 3, 25
FIRST_VERTEBRA, LAST_VERTEBRA = 1, 24
C1_ANCHOR = "C1"

Parity = Literal["odd", "even"] | None
Points = npt.NDArray[np.float64]


def vertebra_name(level: int) -> str:
    """C1..C7, T1..T12, L1..L5 for 1..24; 25 is the sacrum ("S")."""
    if 1 <= level <= 7:
        return f"C{level}"
    if 8 <= level <= 19:
        return f"T{level - 7}"
    if 20 <= level <= 24:
        return f"L{level - 19}"
    if level == 25:
        return "S"
    raise ValueError(f"no vertebra has level {level}")


def disc_name(level: int) -> str:
    """C2-C3 for 3 ... L5-S for 25."""
    if not FIRST_DISC <= level <= LAST_DISC:
        raise ValueError(f"no disc has level {level}")
    return f"{vertebra_name(level - 1)}-{vertebra_name(level)}"


@dataclass(frozen=True)
class SpineAxis:
    """A polyline along the spine (patient mm), superior end first, with arc lengths."""

    points: Points  # (K, 3), K >= 2
    arc: npt.NDArray[np.float64]  # (K,), arc[0] == 0

    def position(self, centres: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Arc length (mm from the superior end) of each point's nearest place on the axis;
        beyond the ends the first and last segments are extended, so order is kept there."""
        query = np.atleast_2d(np.asarray(centres, dtype=float))
        starts, ends = self.points[:-1], self.points[1:]
        segment = ends - starts  # (S, 3)
        lengths = np.linalg.norm(segment, axis=1)
        relative = query[:, None, :] - starts[None, :, :]  # (N, S, 3)
        fraction = np.einsum("nsk,sk->ns", relative, segment) / lengths**2
        lower = np.zeros_like(fraction)
        upper = np.ones_like(fraction)
        lower[:, 0] = -np.inf
        upper[:, -1] = np.inf
        fraction = np.clip(fraction, lower, upper)
        nearest = starts[None] + fraction[..., None] * segment[None]
        distance = np.linalg.norm(query[:, None, :] - nearest, axis=2)
        best = np.argmin(distance, axis=1)
        rows = np.arange(len(query))
        result: npt.NDArray[np.float64] = self.arc[best] + fraction[rows, best] * lengths[best]
        return result


def spine_axis(points: npt.ArrayLike, step_mm: float = 5.0) -> SpineAxis:
    """The axis through a cloud of patient points (the canal's voxel centres): main direction
    by PCA, pointing inferior (LPS: decreasing z); centroids of `step_mm` slabs along it."""
    cloud = np.asarray(points, dtype=float).reshape(-1, 3)
    if len(cloud) == 0:
        raise ValueError("the spine axis needs at least one point")
    centre = cloud.mean(axis=0)
    if len(cloud) < 2:
        direction = np.array([0.0, 0.0, -1.0])
    else:
        _, _, vectors = np.linalg.svd(cloud - centre, full_matrices=False)
        direction = vectors[0]
    if direction[2] > 0 or (direction[2] == 0 and direction @ np.ones(3) < 0):
        direction = -direction
    along = (cloud - centre) @ direction
    slab = np.floor((along - along.min()) / step_mm).astype(np.int64)
    counts = np.bincount(slab)
    kept = np.flatnonzero(counts)
    sums = np.stack([np.bincount(slab, weights=cloud[:, k]) for k in range(3)], axis=1)
    polyline = sums[kept] / counts[kept, None]
    if len(polyline) < 2:
        polyline = np.stack([centre - direction * step_mm / 2, centre + direction * step_mm / 2])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))])
    return SpineAxis(polyline, arc)


@dataclass(frozen=True)
class DiscNumbering:
    """Levels of discs given in order along the spine (None: not determined), the landmarks
    that anchored them, and notes on every landmark dropped or disagreement found."""

    levels: tuple[int | None, ...]
    anchors: tuple[str, ...]
    notes: tuple[str, ...]


def number_discs(
    count: int, landmarks: Mapping[str, int], c1_above: int | None = None
) -> DiscNumbering:
    """Levels of `count` discs ordered superior to inferior. `landmarks` maps a landmark disc's
    name (LANDMARK_DISCS) to its index in that order; `c1_above` is the index of the first disc
    below C1 (so it is C2-C3), if C1 was found."""
    anchors = [(index, LANDMARK_DISCS[name], name) for name, index in landmarks.items()]
    if c1_above is not None and 0 <= c1_above < count:
        anchors.append((c1_above, FIRST_DISC, C1_ANCHOR))
    for index, _, name in anchors:
        if not 0 <= index < count:
            raise ValueError(f"landmark {name} is disc {index} of {count}")
    notes: list[str] = []
    if not anchors:
        return DiscNumbering((None,) * count, (), ("no landmark found: levels not assigned",))
    kept = _ordered_anchors(anchors)
    for dropped in sorted(set(anchors) - set(kept)):
        notes.append(f"landmark {dropped[2]} contradicts the others' order along the spine")
    kept.sort()
    for (upper, upper_level, upper_name), (lower, lower_level, lower_name) in itertools.pairwise(
        kept
    ):
        if lower - upper != lower_level - upper_level:
            notes.append(
                f"landmarks {upper_name} and {lower_name} are {lower - upper} discs apart, "
                f"{lower_level - upper_level} expected: discs between them are counted from "
                "the nearer one"
            )
    levels: list[int | None] = []
    for disc in range(count):
        index, level, _ = min(kept, key=lambda anchor: (abs(anchor[0] - disc), anchor[0]))
        number = level + disc - index
        levels.append(number if FIRST_DISC <= number <= LAST_DISC else None)
    outside = sum(level is None for level in levels)
    if outside:
        notes.append(f"{outside} disc(s) counted beyond C2-C3 or L5-S: no level")
    names = tuple(dict.fromkeys(name for _, _, name in sorted(kept)))
    return DiscNumbering(tuple(levels), names, tuple(notes))


def _ordered_anchors(anchors: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The largest set of anchors whose levels grow with their index (strictly; two anchors on
    one disc must agree); among equals the one whose counts agree most, then the earliest."""
    for size in range(len(anchors), 0, -1):
        candidates = []
        for subset in itertools.combinations(sorted(anchors), size):
            pairs = list(itertools.pairwise(subset))
            if all(
                (b[0] > a[0] and b[1] > a[1]) or (b[0] == a[0] and b[1] == a[1]) for a, b in pairs
            ):
                agreeing = sum(b[0] - a[0] == b[1] - a[1] for a, b in pairs)
                candidates.append((-agreeing, subset))
        if candidates:
            return list(min(candidates)[1])
    return []


@dataclass(frozen=True)
class VertebraPart:
    """One connected vertebra part: its place along the spine and step 2's parity for it."""

    position: float
    parity: Parity


def number_vertebrae(
    parts: Sequence[VertebraPart], discs: Sequence[tuple[float, int | None]]
) -> tuple[list[int | None], list[str]]:
    """Level of each vertebra part (None: not determined) from the numbered discs (position,
    level) around it; notes where step 2's parity disagrees with the discs."""
    numbered = sorted((position, level) for position, level in discs if level is not None)
    levels: list[int | None] = [None] * len(parts)
    notes: list[str] = []
    if not numbered:
        if parts:
            notes.append("no numbered disc: vertebra levels not assigned")
        return levels, notes
    bounds = [-np.inf, *(position for position, _ in numbered), np.inf]
    disc_levels = [None, *(level for _, level in numbered), None]
    order = sorted(range(len(parts)), key=lambda k: parts[k].position)
    for gap in range(len(bounds) - 1):
        inside = [k for k in order if bounds[gap] <= parts[k].position < bounds[gap + 1]]
        if not inside:
            continue
        groups = _parity_groups(inside, parts)
        above, below = disc_levels[gap], disc_levels[gap + 1]
        if above is not None:  # count down from the disc above: vertebra `above` lies below it
            numbers = [above + step for step in range(len(groups))]
            if below is not None and numbers[-1] >= below:
                notes.append(
                    f"{len(groups)} vertebra parts of alternating parity between discs "
                    f"{disc_name(above)} and {disc_name(below)}: the lowest ones share a level"
                )
                numbers = [min(number, below - 1) for number in numbers]
        else:  # above the first disc: count up from it
            assert below is not None
            numbers = [below - len(groups) + step for step in range(len(groups))]
        for group, number in zip(groups, numbers, strict=True):
            parity = parts[group[0]].parity
            valid = FIRST_VERTEBRA <= number <= LAST_VERTEBRA
            if valid and parity is not None and parity != _parity(number):
                notes.append(
                    f"vertebra {vertebra_name(number)}: step 2 calls it {parity}, the discs "
                    "around it say otherwise (the discs' level is kept)"
                )
            for k in group:
                levels[k] = number if valid else None
    unnumbered = sum(level is None for level in levels)
    if unnumbered:
        notes.append(f"{unnumbered} vertebra part(s) beyond C1 or L5: no level")
    return levels, notes


def _parity(level: int) -> Parity:
    return "odd" if level % 2 else "even"


def _parity_groups(indices: list[int], parts: Sequence[VertebraPart]) -> list[list[int]]:
    """Consecutive parts of one parity form one vertebra (parts without parity join the
    group before them)."""
    groups: list[list[int]] = []
    current: Parity = None
    for k in indices:
        parity = parts[k].parity
        if groups and (parity is None or parity == current):
            groups[-1].append(k)
            continue
        groups.append([k])
        current = parity
    return groups
