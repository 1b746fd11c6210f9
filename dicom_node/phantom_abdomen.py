"""A synthetic contrast-enhanced abdominal CT with exact organ and liver-tumor ground truth.

Drawn in patient millimetres (LPS, PS3.3 C.7.6.2.1.1), supine head first, axial like
:mod:`dicom_node.phantom`, so :func:`dicom_node.phantom.write_series` writes it as a CT Image
Storage series. Unlike the torso, slice 0 is the lowest slice (the array axes grow toward
patient Left, Posterior, Superior: "LPS"), which is how the node assembles an axial series
(ascending along the slice normal): the truth lines up voxel for voxel with what the node
reads back. The field of view (192 mm at the default 3 mm) runs from the lower thorax (the
liver dome) to the mid lumbar spine; the top slice lies at z = 0.

Anatomy (portal-venous-like contrast, HU): skin, subcutaneous fat (-100), an abdominal wall
(muscle 50), retroperitoneal/mesenteric fat (-100), a spine (vertebral bodies with discs, arches,
processes, spinal canal) between paraspinal and psoas muscles, liver (60) with 1-4 hypodense round
tumors (10-25), spleen (45), kidneys (medulla 30, enhancing cortex 150), stomach (fluid 20 with
an anterior gas cap), gallbladder (5), pancreas (40), aorta (180), inferior vena cava (140) and a
few fluid- and gas-filled bowel loops. Positions and sizes vary a little with the seed; edges are
sharp, so the truth is exact; Gaussian noise is added last. The organs differ in position and
intensity enough for a small network to learn them (see scripts/make_test_models.py).

``ambiguous=NAME`` draws that organ half-way between its own intensity and the surrounding
fat's (as if poorly enhanced): the test phantom for a per-organ uncertainty flag
(AbdomenAtlas-style human review). A model is uncertain there when its training saw such an
organ both labelled and not (as annotators disagree); scripts/make_test_models.py trains the
abdomen model that way for the spleen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipelines import ImageVolume

__all__ = [
    "ABDOMEN_LABELS",
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "LEVELS",
    "SPINE_BODY",
    "SPINE_BODY_R",
    "Anatomy",
    "PhantomGrid",
    "draw_anatomy",
    "level_depth",
    "make_abdomen",
    "segment_distance",
    "tumor_count",
]

DEFAULT_SHAPE = (64, 96, 96)  # slices, rows, columns
DEFAULT_SPACING = (3.0, 3.0, 3.0)  # mm between slices, rows, columns

ABDOMEN_LABELS: dict[str, int] = {
    "spleen": 1,
    "liver": 2,
    "kidney_left": 3,
    "kidney_right": 4,
    "stomach": 5,
    "gallbladder": 6,
    "pancreas": 7,
    "aorta": 8,
    "inferior_vena_cava": 9,
    "liver_tumor": 10,
}

Field = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Vector = tuple[float, float, float]

# Hounsfield units.
_AIR, _FAT, _SOFT, _MUSCLE, _CSF = -1000.0, -100.0, 40.0, 50.0, 15.0
_LIVER, _SPLEEN, _MEDULLA, _CORTEX, _PANCREAS = 60.0, 45.0, 30.0, 150.0, 40.0
_GALLBLADDER, _STOMACH_FLUID, _AORTA, _IVC = 5.0, 20.0, 180.0, 140.0
_DISC, _CORTICAL, _TABLE = 80.0, 700.0, 150.0
_VERTEBRA = 220.0  # cancellous bone of a plain (not level-coded) spine
_BASIVERTEBRAL = 100.0  # centre of a level-coded vertebral body
_TUMOR_HU = (10.0, 25.0)

# Body outline (mm semi-axes around (0, _BODY_Y)), skin, subcutaneous fat and wall thickness.
_BODY_A, _BODY_B, _BODY_Y, _SKIN, _SUBCUTIS, _WALL = 125.0, 90.0, 5.0, 3.0, 12.0, 8.0
_CAVITY_A = _BODY_A - _SKIN - _SUBCUTIS - _WALL
_CAVITY_B = _BODY_B - _SKIN - _SUBCUTIS - _WALL
# Spine: vertebral body centre (x, y) and radius, arch centre and radius, canal radius.
SPINE_BODY, SPINE_BODY_R, SPINE_ARCH, SPINE_ARCH_R, _CANAL_R = (0.0, 50.0), 14.0, 72.0, 12.0, 7.0
_LEVEL_PITCH, _BODY_HEIGHT, _FIRST_LEVEL = 30.0, 23.0, 5.0  # mm: level spacing, body, top
LEVELS = 6  # vertebral levels drawn from the top (T10..L3 in the skeleton phantom)

# Organs: centre (x, y, depth) and semi-axes (mm); sizes and places jitter with the seed.
_ORGANS: dict[str, tuple[Vector, Vector]] = {
    "liver_right": ((-50.0, -5.0, 50.0), (52.0, 55.0, 55.0)),
    "liver_left": ((5.0, -35.0, 40.0), (40.0, 22.0, 30.0)),
    "spleen": ((68.0, 28.0, 50.0), (20.0, 30.0, 38.0)),
    "stomach": ((38.0, -25.0, 50.0), (28.0, 26.0, 36.0)),
    "kidney_right": ((-58.0, 42.0, 125.0), (20.0, 20.0, 40.0)),
    "kidney_left": ((58.0, 40.0, 110.0), (20.0, 20.0, 40.0)),
    "gallbladder": ((-35.0, -38.0, 95.0), (14.0, 15.0, 26.0)),
}
_PANCREAS_PATH = ((-28.0, 2.0, 100.0), (8.0, -2.0, 92.0), (52.0, 14.0, 80.0))
_PANCREAS_R = 9.0
_AORTA_XY, _AORTA_R, _IVC_XY, _IVC_R = (10.0, 22.0), 9.0, (-20.0, 20.0), 10.0
_BOWEL = ((-40.0, -35.0, 150.0), (15.0, -45.0, 140.0), (50.0, -30.0, 160.0), (-5.0, -20.0, 175.0))


@dataclass(frozen=True)
class PhantomGrid:
    """Voxel centres of an axial HFS grid in patient mm: x (columns, +left), y (rows,
    +posterior) and depth below the top slice (slices, slice 0 the lowest); broadcastable 3D
    arrays."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def origin(self) -> Vector:
        slices, rows, columns = self.shape
        return (
            -(columns - 1) / 2 * self.spacing[2],
            -(rows - 1) / 2 * self.spacing[1],
            -(slices - 1) * self.spacing[0],
        )

    @property
    def x(self) -> Field:
        column = np.arange(self.shape[2], dtype=np.float64)
        return (self.origin[0] + column * self.spacing[2])[np.newaxis, np.newaxis, :]

    @property
    def y(self) -> Field:
        row = np.arange(self.shape[1], dtype=np.float64)
        return (self.origin[1] + row * self.spacing[1])[np.newaxis, :, np.newaxis]

    @property
    def depth(self) -> Field:
        above = np.arange(self.shape[0] - 1, -1, -1, dtype=np.float64)
        return (above * self.spacing[0])[:, np.newaxis, np.newaxis]

    def volume(self, hu: Field, rng: np.random.Generator, noise_hu: float) -> ImageVolume:
        """The int16 CT volume of `hu` plus Gaussian noise (slice axis toward the head)."""
        if noise_hu > 0:
            hu = hu + rng.normal(0.0, noise_hu, hu.shape)
        array = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        direction = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
        return ImageVolume(array, self.origin, self.spacing, direction, "CT")


@dataclass
class Anatomy:
    """The drawn abdomen before noise: HU, organ labels (ABDOMEN_LABELS values, no tumors
    yet), vertebral level per bone voxel (0 = none, k = k-th level from the top) and the
    random generator that drew it (callers keep drawing from it, so one seed fixes all)."""

    grid: PhantomGrid
    hu: Field
    organs: npt.NDArray[np.uint8]
    levels: npt.NDArray[np.uint8]
    rng: np.random.Generator
    spine_top: float = 0.0  # depth (mm) of the top of the first vertebral body

    def paint(self, mask: Mask, value: float | Field, label: int | None = None) -> None:
        """Set HU (and the organ label) where `mask` (broadcast to the grid) holds."""
        mask = np.broadcast_to(mask, self.hu.shape)
        self.hu[mask] = value if np.isscalar(value) else np.broadcast_to(value, mask.shape)[mask]
        if label is not None:
            self.organs[mask] = label


def make_abdomen(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    *,
    ambiguous: str | None = None,
    noise_hu: float = 10.0,
) -> tuple[ImageVolume, npt.NDArray[np.uint8]]:
    """The abdomen CT (int16 HU) and its truth (uint8, ABDOMEN_LABELS values)."""
    if ambiguous is not None and ambiguous not in ABDOMEN_LABELS:
        raise ValueError(f"ambiguous names one of {', '.join(ABDOMEN_LABELS)} (not {ambiguous!r})")
    anatomy = draw_anatomy(shape, spacing, seed)
    _draw_tumors(anatomy)
    if ambiguous is not None:
        _make_ambiguous(anatomy, ABDOMEN_LABELS[ambiguous])
    volume = anatomy.grid.volume(anatomy.hu, anatomy.rng, noise_hu)
    return volume, anatomy.organs


def tumor_count(truth: npt.NDArray[np.integer]) -> int:
    """Number of separate liver tumors (26-connected components of the tumor label)."""
    tumors = truth == ABDOMEN_LABELS["liver_tumor"]
    _, count = ndimage.label(tumors, structure=np.ones((3, 3, 3), dtype=bool))
    return int(count)


def draw_anatomy(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    seed: int,
    *,
    level_hu: Sequence[float] | None = None,
) -> Anatomy:
    """Body, organs and spine without tumors or noise. Vertebrae have a cortical shell and
    arch around cancellous bone, unless `level_hu` gives each level from the top one HU for
    the whole vertebra (the skeleton phantom codes the levels so)."""
    if min(shape) < 1 or min(spacing) <= 0:
        raise ValueError(f"shape and spacing must be positive (got {shape}, {spacing})")
    grid = PhantomGrid(shape, spacing)
    rng = np.random.default_rng(seed)
    anatomy = Anatomy(
        grid,
        np.full(shape, _AIR),
        np.zeros(shape, dtype=np.uint8),
        np.zeros(shape, dtype=np.uint8),
        rng,
    )
    x, y, depth = grid.x, grid.y, grid.depth
    paint = anatomy.paint
    paint((np.abs(x) < 140) & (y > _BODY_Y + _BODY_B + 6) & (y < _BODY_Y + _BODY_B + 14), _TABLE)
    layers = ((0.0, _SOFT), (_SKIN, _FAT), (_SKIN + _SUBCUTIS, _MUSCLE))
    for inset, value in (*layers, (_SKIN + _SUBCUTIS + _WALL, _FAT)):
        paint(_ellipse(x, y, 0.0, _BODY_Y, _BODY_A - inset, _BODY_B - inset), value)
    for side in (-1.0, 1.0):  # paraspinal muscles, psoas growing toward the pelvis
        paint(_ellipse(x, y, side * 30.0, 78.0, 20.0, 13.0), _MUSCLE)
        psoas = 4.0 + 10.0 * np.clip((depth - 90.0) / 90.0, 0.0, 1.0)
        paint(_ellipse(x, y, side * (16.0 + psoas), 48.0, psoas, psoas) & (depth > 90.0), _MUSCLE)
    organs = {name: _jitter(rng, *place) for name, place in _ORGANS.items()}
    cavity = _ellipse(x, y, 0.0, _BODY_Y, _CAVITY_A, _CAVITY_B)
    liver = _ellipsoid(x, y, depth, *organs["liver_right"])
    liver |= _ellipsoid(x, y, depth, *organs["liver_left"])
    paint(liver & cavity, _LIVER, ABDOMEN_LABELS["liver"])
    paint(_ellipsoid(x, y, depth, *organs["spleen"]) & cavity, _SPLEEN, ABDOMEN_LABELS["spleen"])
    (sx, sy, sd), semi = organs["stomach"]
    stomach = _ellipsoid(x, y, depth, (sx, sy, sd), semi) & cavity
    paint(stomach, _STOMACH_FLUID, ABDOMEN_LABELS["stomach"])
    paint(stomach & (y < sy - 0.45 * semi[1]), _AIR)  # gas rises to the front (supine)
    for name in ("kidney_right", "kidney_left"):
        centre, (a, b, c) = organs[name]
        paint(_ellipsoid(x, y, depth, centre, (a, b, c)), _CORTEX, ABDOMEN_LABELS[name])
        paint(_ellipsoid(x, y, depth, centre, (a - 5.0, b - 5.0, c - 5.0)), _MEDULLA)
    shift = rng.normal(0.0, 2.0, 3)
    path = [(px + shift[0], py + shift[1], pd + shift[2]) for px, py, pd in _PANCREAS_PATH]
    pancreas = _tube(x, y, depth, path, _PANCREAS_R) & cavity
    paint(pancreas, _PANCREAS, ABDOMEN_LABELS["pancreas"])
    gallbladder = _ellipsoid(x, y, depth, *organs["gallbladder"])
    paint(gallbladder, _GALLBLADDER, ABDOMEN_LABELS["gallbladder"])
    for centre in _BOWEL:  # bowel loops: fluid with a gas bubble, unlabelled
        (bx, by, bd), (ba, _, _) = _jitter(rng, centre, (16.0, 16.0, 16.0))
        paint(_ellipsoid(x, y, depth, (bx, by, bd), (ba, ba, ba)) & cavity, _STOMACH_FLUID)
        paint(_ellipsoid(x, y, depth, (bx, by - 0.5 * ba, bd), (6.0, 6.0, 6.0)) & cavity, _AIR)
    for (vx, vy), radius, value, name in (
        (_AORTA_XY, _AORTA_R, _AORTA, "aorta"),
        (_IVC_XY, _IVC_R, _IVC, "inferior_vena_cava"),
    ):
        vessel = _ellipse(x, y, vx + rng.normal(0.0, 1.5), vy, radius, radius)
        paint(vessel, value, ABDOMEN_LABELS[name])
    _draw_spine(anatomy, level_hu, top=_FIRST_LEVEL + float(rng.uniform(-2.0, 2.0)))
    return anatomy


def _draw_spine(anatomy: Anatomy, level_hu: Sequence[float] | None, top: float) -> None:
    """Vertebral levels `_LEVEL_PITCH` apart: body and arch with processes around the canal,
    discs between the bodies; cortical shell and cancellous core, or one HU per level with a
    darker centre."""
    anatomy.spine_top = top
    grid, paint = anatomy.grid, anatomy.paint
    x, y, depth = grid.x, grid.y, grid.depth
    (bx, by), radius = SPINE_BODY, SPINE_BODY_R
    body_disc = _ellipse(x, y, bx, by, radius, radius)
    arch = _ellipse(x, y, 0.0, SPINE_ARCH, SPINE_ARCH_R, SPINE_ARCH_R)
    arch |= (np.abs(x) <= 4.0) & (y >= SPINE_ARCH) & (y <= SPINE_ARCH + 18.0)  # spinous
    arch |= (np.abs(x) <= 26.0) & (y >= SPINE_ARCH - 8.0) & (y <= SPINE_ARCH)  # transverse
    arch &= ~_ellipse(x, y, 0.0, SPINE_ARCH, _CANAL_R, _CANAL_R)
    core = _ellipse(x, y, bx, by, radius - 3.0, radius - 3.0)
    centre = _ellipse(x, y, bx, by, 4.5, 4.5)  # the basivertebral venous plexus
    paint(body_disc, _DISC)
    for level in range(LEVELS):
        start = top + level * _LEVEL_PITCH
        slab = (depth >= start) & (depth < start + _BODY_HEIGHT)
        if level_hu is None:
            paint((body_disc | arch) & slab, _CORTICAL)
            paint(core & slab, _VERTEBRA)
        else:
            paint((body_disc | arch) & slab, level_hu[level])
            paint(centre & slab, _BASIVERTEBRAL)
        anatomy.levels[np.broadcast_to((body_disc | arch) & slab, grid.shape)] = level + 1
    paint(_ellipse(x, y, 0.0, SPINE_ARCH, _CANAL_R, _CANAL_R), _CSF)


def level_depth(level: int, top: float = _FIRST_LEVEL) -> float:
    """Depth (mm) of the middle of vertebral body `level` (0 = top level) without jitter."""
    return top + level * _LEVEL_PITCH + _BODY_HEIGHT / 2


def _draw_tumors(anatomy: Anatomy) -> None:
    """1-4 round hypodense tumors well inside the liver, apart from each other."""
    rng, grid = anatomy.rng, anatomy.grid
    liver = anatomy.organs == ABDOMEN_LABELS["liver"]
    inside = ndimage.distance_transform_edt(liver, sampling=grid.spacing)
    count = int(rng.integers(1, 5))
    centres: list[tuple[npt.NDArray[np.float64], float]] = []
    candidates = np.argwhere(inside > 12.0)
    points = candidates * np.asarray(grid.spacing)
    for _ in range(count):
        radius = float(rng.uniform(10.0, 15.0))
        room = inside[tuple(candidates.T)] > radius + 4.0
        for centre, other in centres:
            room &= np.linalg.norm(points - centre, axis=1) > radius + other + 8.0
        if not room.any():
            break
        choice = points[rng.choice(np.flatnonzero(room))]
        centres.append((choice, radius))
    z, r, c = np.ogrid[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    for (cz, cr, cc), radius in centres:
        dz, dr, dc = z * grid.spacing[0] - cz, r * grid.spacing[1] - cr, c * grid.spacing[2] - cc
        sphere = (dz**2 + dr**2 + dc**2 <= radius**2) & liver
        anatomy.paint(sphere, float(rng.uniform(*_TUMOR_HU)), ABDOMEN_LABELS["liver_tumor"])


def _make_ambiguous(anatomy: Anatomy, label: int) -> None:
    """The organ's intensity half-way between its own and the surrounding fat's, as if
    poorly enhanced or partly volumed; the truth stays the organ."""
    organ = anatomy.organs == label
    anatomy.hu[organ] = (anatomy.hu[organ] + _FAT) / 2.0


def _jitter(rng: np.random.Generator, centre: Vector, semi: Vector) -> tuple[Vector, Vector]:
    """A seed's variant of a shape: centre moved by ~3 mm, semi-axes scaled by 0.92-1.08."""
    moved = np.asarray(centre) + np.clip(rng.normal(0.0, 3.0, 3), -6.0, 6.0)
    scaled = np.asarray(semi) * rng.uniform(0.92, 1.08, 3)
    a, b, c = (float(v) for v in moved)
    d, e, f = (float(v) for v in scaled)
    return (a, b, c), (d, e, f)


def _ellipse(
    x: Field, y: Field, cx: float | Field, cy: float, a: float | Field, b: float | Field
) -> Mask:
    result: Mask = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
    return result


def _ellipsoid(x: Field, y: Field, depth: Field, centre: Vector, semi: Vector) -> Mask:
    (cx, cy, cd), (a, b, c) = centre, semi
    result: Mask = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((depth - cd) / c) ** 2 <= 1.0
    return result


def _tube(x: Field, y: Field, depth: Field, path: Sequence[Vector], radius: float) -> Mask:
    """Voxels within `radius` mm of the polyline `path` (x, y, depth points)."""
    shape = np.broadcast_shapes(x.shape, y.shape, depth.shape)
    inside = np.zeros(shape, dtype=bool)
    for start, end in itertools.pairwise(path):
        inside |= segment_distance(x, y, depth, start, end) <= radius
    return inside


def segment_distance(x: Field, y: Field, depth: Field, start: Vector, end: Vector) -> Field:
    """Distance (mm) of each voxel to the segment start-end (x, y, depth points)."""
    axis = np.subtract(end, start)
    offset = (x - start[0], y - start[1], depth - start[2])
    along = (offset[0] * axis[0] + offset[1] * axis[1] + offset[2] * axis[2]) / axis.dot(axis)
    t = np.clip(along, 0.0, 1.0)
    squared = sum((offset[k] - t * axis[k]) ** 2 for k in range(3))
    distance: Field = np.sqrt(squared)
    return distance
