"""The one curated code table for segments: machine name -> coded category/type and colour.

Every pipeline takes its segment codes from here (and extends this table when it adds
structures), so that the same structure is coded the same way in every SEG the node writes.
Categories and types are SNOMED CT concepts from PS3.16 CID 7150 (Segmentation Property
Categories) and CID 7151/7166 (Segmentation Property Types); measurement units are UCUM.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.result import Code, Segment

__all__ = ["MILLILITER", "SEGMENT_CODES", "VOLUME", "SegmentCode", "segment_for"]

ANATOMICAL_STRUCTURE = Code("91723000", "SCT", "Anatomical Structure")
TISSUE = Code("85756007", "SCT", "Tissue")

VOLUME = Code("118565006", "SCT", "Volume")
MILLILITER = Code("ml", "UCUM", "milliliter")


@dataclass(frozen=True)
class SegmentCode:
    description: str
    category: Code
    type: Code
    color: tuple[int, int, int]


SEGMENT_CODES: dict[str, SegmentCode] = {
    "body": SegmentCode(
        "Body", ANATOMICAL_STRUCTURE, Code("38266002", "SCT", "Entire body"), (177, 122, 101)
    ),
    "lung_left": SegmentCode(
        "Left lung", ANATOMICAL_STRUCTURE, Code("44029006", "SCT", "Left lung"), (128, 174, 128)
    ),
    "lung_right": SegmentCode(
        "Right lung", ANATOMICAL_STRUCTURE, Code("3341006", "SCT", "Right lung"), (111, 184, 210)
    ),
    "airway": SegmentCode(
        "Airway",
        ANATOMICAL_STRUCTURE,
        Code("89187006", "SCT", "Airway structure"),
        (182, 228, 255),
    ),
    "bone": SegmentCode("Bone", TISSUE, Code("272673000", "SCT", "Bone"), (241, 214, 145)),
    "adipose_tissue": SegmentCode(
        "Adipose tissue", TISSUE, Code("55603005", "SCT", "Fat"), (230, 220, 70)
    ),
}


def segment_for(name: str, label: int) -> Segment:
    """The segment-table row for a curated structure name; unknown names are a bug."""
    try:
        code = SEGMENT_CODES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the curated code table (pipelines/codes.py)") from None
    return Segment(label, name, code.description, code.category, code.type, code.color)
