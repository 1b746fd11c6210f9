"""A synthetic torso CT with individual vertebrae, ribs and abdominal organs, and its truth per
AutoOrgan task ("organ", "Vertebrae", "Rib" label groups).

The abdomen of :mod:`dicom_node.phantom_abdomen` (no tumors) with a spine of six levels, T10 at
the top to L3, and the ribs 10-12 on both sides. Each rib leaves its vertebra at the
costovertebral junction (touching the vertebral body and the transverse process), runs back
and out to the body wall, then around it, sloping down toward the front; ribs 11 and 12 are
the short floating ones. Ribs are 11 x 12 mm in cross-section (about 4 voxels at 3 mm), with
a fatty marrow core.

To be learnable by a tiny network that sees a small patch and must give the same answer
mirrored (nnU-Net test-time mirroring), each level is coded by intensity: vertebra k (0 = T10)
is 200 + 100 k HU (its body's centre darker), and the bone of rib n is 800 + 100 (n - 10) HU.
The label values are AutoOrgan's (labels.json of its task models), so the truths compare
directly with a task model's output.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dicom_node.phantom_abdomen import (
    ABDOMEN_LABELS,
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    LEVELS,
    SPINE_BODY,
    SPINE_BODY_R,
    Anatomy,
    draw_anatomy,
    level_depth,
    segment_distance,
)
from pipelines import ImageVolume

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "ORGAN_LABELS",
    "RIB_LABELS",
    "TASKS",
    "VERTEBRA_LABELS",
    "make_skeleton",
]

# Label values of AutoOrgan's task models (labels.json groups "organ", "Vertebrae", "Rib"):
# only the structures this phantom draws.
ORGAN_LABELS: dict[str, int] = {
    "spleen": 1,
    "kidney_right": 2,
    "kidney_left": 3,
    "gallbladder": 4,
    "liver": 5,
    "stomach": 6,
    "pancreas": 7,
    "aorta": 22,
}
_VERTEBRA_NAMES = ("T10", "T11", "T12", "L1", "L2", "L3")
VERTEBRA_LABELS: dict[str, int] = {
    f"vertebrae_{name}": 17 + index for index, name in enumerate(_VERTEBRA_NAMES)
}
RIBS = (10, 11, 12)
RIB_LABELS: dict[str, int] = {
    f"rib_{side}_{rib}": 2 * rib - 1 + offset
    for rib in RIBS
    for offset, side in enumerate(("left", "right"))
}
TASKS = ("organ", "vertebrae", "rib")

_VERTEBRA_CODE, _VERTEBRA_STEP = 200.0, 100.0
_RIB_CODE, _RIB_STEP = 800.0, 100.0
# The ellipse the ribs follow (centre (0, _RIB_Y), semi-axes in mm), their half thickness
# across and along the body axis, and where each rib ends (angle from the back, radians).
_RIB_A, _RIB_B, _RIB_Y, _RIB_HALF_WIDTH, _RIB_HALF_HEIGHT = 106.0, 71.0, 5.0, 5.5, 6.0
_RIB_END = {10: 0.68 * np.pi, 11: 0.5 * np.pi, 12: 0.38 * np.pi}
_MARROW, _MARROW_HU = 0.55, 0.0  # fatty marrow: the core, as a fraction of the rib's size
_RIB_DROP = 40.0  # mm lower at the front than at the back
_TUBERCLE_X = 32.0  # where the neck of the rib meets the ellipse (mm from the midline)


def make_skeleton(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    *,
    noise_hu: float = 10.0,
) -> tuple[ImageVolume, dict[str, npt.NDArray[np.uint8]]]:
    """The torso CT (int16 HU) and its truth per task: "organ", "vertebrae", "rib" (uint8,
    AutoOrgan label values: ORGAN_LABELS, VERTEBRA_LABELS, RIB_LABELS)."""
    codes = [_VERTEBRA_CODE + _VERTEBRA_STEP * level for level in range(LEVELS)]
    anatomy = draw_anatomy(shape, spacing, seed, level_hu=codes)
    ribs = _draw_ribs(anatomy)
    organ = np.zeros(shape, dtype=np.uint8)
    for name, value in ORGAN_LABELS.items():
        organ[anatomy.organs == ABDOMEN_LABELS[name]] = value
    organ[ribs > 0] = 0
    first = VERTEBRA_LABELS["vertebrae_T10"]
    spine = (anatomy.levels > 0) & (ribs == 0)
    vertebrae = np.where(spine, anatomy.levels + (first - 1), 0).astype(np.uint8)
    volume = anatomy.grid.volume(anatomy.hu, anatomy.rng, noise_hu)
    return volume, {"organ": organ, "vertebrae": vertebrae, "rib": ribs}


def _draw_ribs(anatomy: Anatomy) -> npt.NDArray[np.uint8]:
    """Paint ribs 10-12 left and right; returns their labels (RIB_LABELS values)."""
    grid = anatomy.grid
    x, y, depth = grid.x, grid.y, grid.depth
    labels = np.zeros(grid.shape, dtype=np.uint8)
    u, v = x / _RIB_A, (y - _RIB_Y) / _RIB_B
    theta = np.arctan2(np.abs(u), v)
    scale = np.hypot(_RIB_A * np.sin(theta), _RIB_B * np.cos(theta))  # mm per unit of u, v
    radial = (np.sqrt(u**2 + v**2) - 1.0) * scale  # mm outside the ellipse
    start = float(np.arcsin(_TUBERCLE_X / _RIB_A))
    tubercle_y = _RIB_Y + _RIB_B * float(np.cos(start))
    (body_x, body_y), body_r = SPINE_BODY, SPINE_BODY_R
    for index, rib in enumerate(RIBS):
        middle = level_depth(index, anatomy.spine_top)
        hu = _RIB_CODE + _RIB_STEP * index
        for side_sign, side in ((1.0, "left"), (-1.0, "right")):
            angle = np.arctan2(side_sign * u, v)  # 0 at the back, growing toward the front
            slope = _RIB_DROP * (1.0 - np.cos(angle - start)) / 2.0
            height = depth - middle - slope
            along = (angle >= start) & (angle <= _RIB_END[rib])
            ellipse = (radial / _RIB_HALF_WIDTH) ** 2 + (height / _RIB_HALF_HEIGHT) ** 2
            head = (side_sign * (body_x + body_r + 2.0), body_y + 2.0, middle)
            tubercle = (side_sign * _TUBERCLE_X, tubercle_y, middle)
            distance = segment_distance(x, y, depth, head, tubercle)  # the neck
            rib_mask = np.broadcast_to(
                (along & (ellipse <= 1)) | (distance <= _RIB_HALF_WIDTH), grid.shape
            )
            anatomy.paint(rib_mask, hu)
            marrow = (along & (ellipse <= _MARROW**2)) | (distance <= _MARROW * _RIB_HALF_WIDTH)
            anatomy.paint(marrow, _MARROW_HU)
            labels[rib_mask] = RIB_LABELS[f"rib_{side}_{rib}"]
    return labels
