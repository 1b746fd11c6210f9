"""AutoOrgan's task label maps (name -> value), as its labels.json gives them per task model.

A task model's dataset.json lists every label of its group (background 0 and 1..24), as the
published models do, although the phantoms hold only some of them: nnU-Net maps output
channel k to label value k, so the values must run 0..n without gaps.
"""

from __future__ import annotations

__all__ = ["TASK_GROUPS"]

_ORGANS = (
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "liver",
    "stomach",
    "pancreas",
    "lung_upper_lobe_left",
    "lung_lower_lobe_left",
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
    "lung_lower_lobe_right",
    "esophagus",
    "trachea",
    "thyroid_gland",
    "small_bowel",
    "duodenum",
    "colon",
    "urinary_bladder",
    "prostate",
    "heart",
    "aorta",
    "brain",
    "spinal_cord",
)
_VERTEBRAE = tuple(
    [f"vertebrae_C{n}" for n in range(1, 8)]
    + [f"vertebrae_T{n}" for n in range(1, 13)]
    + [f"vertebrae_L{n}" for n in range(1, 6)]
)
_RIBS = tuple(f"rib_{side}_{n}" for n in range(1, 13) for side in ("left", "right"))


def _numbered(names: tuple[str, ...]) -> dict[str, int]:
    return {"background": 0, **{name: value for value, name in enumerate(names, start=1)}}


# phantom_skeleton task name -> the AutoOrgan group's labels
TASK_GROUPS: dict[str, dict[str, int]] = {
    "organ": _numbered(_ORGANS),
    "vertebrae": _numbered(_VERTEBRAE),
    "rib": _numbered(_RIBS),
}
