"""A synthetic sagittal T2 lumbar spine MR and its truth in TotalSpineSeg's final values.

Sagittal slices (from the patient's left to right: the normal is the row direction cross the
column direction), rows running down (S to I), columns running back (A to P), as a scanner
writes a sagittal series (ImageOrientationPatient 0\\1\\0\\0\\0\\-1); axis codes PIR.
The field of view holds, from the top, part of T11, the T11-T12 disc, T12, L1-L5, the discs
between them, the L5-S disc and the sacrum; the spinal canal (bright CSF) runs behind the
vertebral bodies and the cord inside it ends at L1-L2 (the conus). Each seed moves the spine
up or down, bends it (lordosis) and varies the heights of the bodies and discs.

TotalSpineSeg's step 1 must tell the landmark discs (here T12-L1 and L5-S) from the others; to
be learnable by a tiny network trained for minutes, they are drawn in their own intensity
(T12-L1 brighter, L5-S darker, as a degenerated last disc often is). The truth holds
`pipelines.mr_spine.labelling.TSS_VALUES`; :func:`step_truths` gives what each step's model
is trained to output, and the odd-disc channel step 2 takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines import ImageVolume
from pipelines.mr_spine.labelling import (
    STEP1,
    STEP2,
    TSS_VALUES,
    disc_key,
    vertebra_key,
)

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "DISC_LEVELS",
    "VERTEBRA_LEVELS",
    "StepTruths",
    "make_spine",
    "step_truths",
]

DEFAULT_SHAPE = (16, 96, 64)  # slices (L-R), rows (S-I), columns (A-P)
DEFAULT_SPACING = (3.0, 2.5, 2.5)
VERTEBRA_LEVELS = tuple(range(18, 25))  # T11 .. L5 (levels_maps numbering)
DISC_LEVELS = tuple(range(19, 26))  # T11-T12 .. L5-S
_SACRUM = TSS_VALUES["sacrum"]
_CONUS_LEVEL = 21  # the cord ends at the L1-L2 disc

# T2-weighted signal, arbitrary units
_MUSCLE, _BODY, _DISC, _CSF, _CORD, _SACRUM_SIGNAL = 300.0, 420.0, 800.0, 1100.0, 520.0, 400.0
_LANDMARK_SIGNAL = {20: 1000.0, 25: 620.0}  # T12-L1, L5-S
_PROCESS = 380.0

Field = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StepTruths:
    step1: npt.NDArray[np.uint8]
    step2: npt.NDArray[np.uint8]
    odd_discs: npt.NDArray[np.bool_]  # step 2's second input channel


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> ImageVolume:
    """The empty sagittal grid, centred on the patient origin."""
    slices, rows, columns = shape
    origin = (
        (slices - 1) / 2 * spacing[0],
        -(columns - 1) / 2 * spacing[2],
        (rows - 1) / 2 * spacing[1],
    )
    # slices toward the patient's right: the normal is row x column, as assembly orders them
    direction = ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
    return ImageVolume(np.zeros(shape, np.float32), origin, spacing, direction, "MR")


def make_spine(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    *,
    noise: float = 20.0,
) -> tuple[ImageVolume, npt.NDArray[np.uint8]]:
    """The MR volume (int16 signal) and its truth (uint8, TSS_VALUES)."""
    rng = np.random.default_rng(seed)
    grid = _grid(shape, spacing)
    indices = np.moveaxis(np.indices(shape), 0, -1)
    world = grid.index_to_world(indices)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    bend = rng.uniform(-10.0, 10.0)
    spine_y = 10.0 + bend * (z / 120.0) ** 2  # the canal's centre, front to back
    signal = np.full(shape, _MUSCLE)
    truth = np.zeros(shape, dtype=np.uint8)

    centre = -70.0 + rng.uniform(-8.0, 8.0)  # the L5-S disc
    discs: dict[int, tuple[float, float]] = {}  # level -> (centre z, half height)
    bodies: dict[int, tuple[float, float]] = {}
    for level in reversed(DISC_LEVELS):
        disc_half = 4.0 * rng.uniform(0.9, 1.1)
        discs[level] = (centre, disc_half)
        body_half = 11.0 * rng.uniform(0.92, 1.08)
        body_centre = centre + disc_half + body_half
        bodies[level - 1] = (body_centre, body_half)
        centre = body_centre + body_half + 4.0 * rng.uniform(0.9, 1.1)
    lateral = (x / 20.0) ** 2
    front = spine_y - 8.0  # the bodies' back wall
    for level, (middle, half) in bodies.items():
        inside = (lateral + ((y - (front - 16.0)) / 16.0) ** 2 <= 1.0) & (
            np.abs(z - middle) <= half
        )
        process = (np.abs(x) <= 4.0) & (y >= spine_y + 9.0) & (y <= spine_y + 32.0)
        process &= np.abs(z - middle) <= half * 0.6
        for mask, value in ((inside, _BODY), (process, _PROCESS)):
            signal[mask] = value
            truth[mask] = TSS_VALUES[vertebra_key(level)]
    for level, (middle, half) in discs.items():
        inside = (lateral + ((y - (front - 15.0)) / 15.0) ** 2 <= 0.95) & (
            np.abs(z - middle) <= half
        )
        signal[inside] = _LANDMARK_SIGNAL.get(level, _DISC)
        truth[inside] = TSS_VALUES[disc_key(level)]
    sacrum_top = discs[25][0] - discs[25][1]
    below = sacrum_top - z
    sacrum = (below > 0) & (lateral + ((y - (front - 14.0 + 0.4 * below)) / 14.0) ** 2 <= 1.0)
    signal[sacrum] = _SACRUM_SIGNAL
    truth[sacrum] = _SACRUM

    across = (x / 9.0) ** 2 + ((y - spine_y) / 7.0) ** 2
    canal = (across <= 1.0) & (z > sacrum_top - 20.0)
    signal[canal] = _CSF
    truth[canal] = TSS_VALUES["spinal_canal"]
    conus = discs[_CONUS_LEVEL][0]
    cord = ((x / 4.5) ** 2 + ((y - spine_y) / 4.0) ** 2 <= 1.0) & (z > conus)
    signal[cord] = _CORD
    truth[cord] = TSS_VALUES["spinal_cord"]

    signal = signal * rng.uniform(0.9, 1.1) + rng.normal(0.0, noise, shape)
    array = np.clip(np.rint(signal), 0, 4095).astype(np.int16)
    return grid.with_array(array), truth


def step_truths(truth: npt.NDArray[np.integer]) -> StepTruths:
    """What TotalSpineSeg's step 1 and step 2 output for a final truth, and step 2's odd
    discs (discs of odd level)."""
    step1 = np.zeros(truth.shape, dtype=np.uint8)
    step2 = np.zeros(truth.shape, dtype=np.uint8)
    odd = np.zeros(truth.shape, dtype=bool)
    landmarks = {20: "T12-L1", 25: "L5-S", 3: "C2-C3", 8: "C7-T1"}
    for level in range(3, 26):
        mask = truth == TSS_VALUES[disc_key(level)]
        landmark = landmarks.get(level)
        step1[mask] = STEP1.landmarks[landmark] if landmark else STEP1.disc
        step2[mask] = STEP2.landmarks[landmark] if landmark else STEP2.disc
        odd |= mask & bool(level % 2)
    odd_class, even_class = STEP2.odd, STEP2.even
    assert odd_class is not None
    assert even_class is not None
    for level in range(1, 25):
        mask = truth == TSS_VALUES[vertebra_key(level)]
        assert STEP1.vertebrae is not None
        assert STEP1.c1 is not None
        step1[mask] = STEP1.c1 if level == 1 else STEP1.vertebrae
        step2[mask] = odd_class if level % 2 else even_class
    sacrum = truth == _SACRUM
    assert STEP1.vertebrae is not None
    assert STEP2.sacrum is not None
    step1[sacrum], step2[sacrum] = STEP1.vertebrae, STEP2.sacrum
    for name, first, second in (
        ("spinal_canal", STEP1.canal, STEP2.canal),
        ("spinal_cord", STEP1.cord, STEP2.cord),
    ):
        mask = truth == TSS_VALUES[name]
        step1[mask], step2[mask] = first, second
    return StepTruths(step1, step2, odd)
