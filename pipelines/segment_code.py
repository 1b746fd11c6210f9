"""The shape of one code-table row, and the codes every table shares (PS3.16 CID 7150, CID 244).

The tables themselves are `pipelines.codes` (organs, ct_basic, lesions) and
`pipelines.code_table_skeleton` (bones); `pipelines.codes` is the public entry point.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.result import Code

__all__ = [
    "ANATOMICAL_STRUCTURE",
    "LEFT",
    "LOCAL_SCHEME",
    "LOCAL_SCHEME_NAME",
    "MORPHOLOGICALLY_ABNORMAL_STRUCTURE",
    "RIGHT",
    "TISSUE",
    "SegmentCode",
    "paired",
    "sct",
]

# CID 7150 Segmentation Property Categories (PS3.16). 91723000 is the code CID 7150 lists for
# "Anatomical Structure" (TotalSegmentator's table uses 123037004 "Body structure" instead).
ANATOMICAL_STRUCTURE = Code("91723000", "SCT", "Anatomical Structure")
TISSUE = Code("85756007", "SCT", "Tissue")
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically Abnormal Structure")

# CID 244 Laterality: the SegmentedPropertyTypeModifierCodeSequence of a paired structure.
LEFT = Code("7771000", "SCT", "Left")
RIGHT = Code("24028007", "SCT", "Right")


@dataclass(frozen=True)
class SegmentCode:
    """How one structure is coded in a SEG segment and its SR measurement group."""

    description: str  # SegmentLabel, e.g. "Right kidney"
    category: Code  # CID 7150
    type: Code  # CID 7151 and friends; the non-lateral concept for paired structures
    color: tuple[int, int, int]  # recommended display colour, sRGB 0-255
    laterality: Code | None = None  # CID 244, for paired structures
    anatomic_region: Code | None = None  # where a lesion or generic structure lies


# Local coding scheme for concepts without a standard code (PS3.3 8.2: private designators
# begin with "99"; an SR names it in its Coding Scheme Identification Sequence).
LOCAL_SCHEME = "99DCMNODE"
LOCAL_SCHEME_NAME = "dicom-node local codes"


def sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


def paired(
    name: str,
    description: str,
    type_: Code,
    left_color: tuple[int, int, int],
    right_color: tuple[int, int, int] | None = None,
    *,
    category: Code = ANATOMICAL_STRUCTURE,
    anatomic_region: Code | None = None,
) -> dict[str, SegmentCode]:
    """The left and right rows of a paired structure: `name` and `description` hold "{side}"
    and "{Side}" (e.g. "kidney_{side}", "{Side} kidney"). Without a right colour, the right
    side is drawn a shade darker than the left, as TotalSegmentator's table does."""
    right = right_color or _darker(left_color)
    return {
        name.format(side=side): SegmentCode(
            description.format(Side=side.capitalize()),
            category,
            type_,
            color,
            laterality,
            anatomic_region,
        )
        for side, laterality, color in (("left", LEFT, left_color), ("right", RIGHT, right))
    }


def _darker(color: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = (round(channel * 0.74) for channel in color)
    return red, green, blue
