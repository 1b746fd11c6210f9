"""Code-table rows for mr_spine's structures besides the vertebrae (those are in
`pipelines.code_table_skeleton`): the intervertebral discs by level, the spinal canal, and a
disc whose level could not be told.

Disc codes are the PS3.16 CID 7151 (Segmentation Property Types) rows "C2/C3 disc" ...
"L5/S1 disc" as pydicom's concept dictionary holds them; the canal is SNOMED CT 61853006
(CID 6115 / 8134 "Vertebral canal"). No standard code means "an intervertebral disc, level
unknown" (SNOMED CT's disc concepts are per level; none of the disc rows of CID 7151 is
generic), so that one is a local code.
"""

from __future__ import annotations

from pipelines.result import Code
from pipelines.segment_code import ANATOMICAL_STRUCTURE, LOCAL_SCHEME, SegmentCode, sct

__all__ = ["SPINE_CODES", "UNNUMBERED_DISC_TYPE"]

# (upper vertebra, lower vertebra, SCT code), CID 7151 meanings "C2/C3 disc" etc.
_DISCS = (
    ("C2", "C3", "1078209008"),
    ("C3", "C4", "58820006"),
    ("C4", "C5", "49400002"),
    ("C5", "C6", "73959003"),
    ("C6", "C7", "75095006"),
    ("C7", "T1", "37414007"),
    ("T1", "T2", "40908007"),
    ("T2", "T3", "6004007"),
    ("T3", "T4", "2620004"),
    ("T4", "T5", "82965004"),
    ("T5", "T6", "72692000"),
    ("T6", "T7", "74401007"),
    ("T7", "T8", "28693002"),
    ("T8", "T9", "9188009"),
    ("T9", "T10", "113209001"),
    ("T10", "T11", "34959001"),
    ("T11", "T12", "1537001"),
    ("T12", "L1", "76206002"),
    ("L1", "L2", "80064006"),
    ("L2", "L3", "67459009"),
    ("L3", "L4", "62551000"),
    ("L4", "L5", "84020006"),
    ("L5", "S", "715056000"),  # CID 7151 "L5/S1 disc"
)

UNNUMBERED_DISC_TYPE = Code("DISC_NO_LEVEL", LOCAL_SCHEME, "Intervertebral disc, level unknown")


def _disc_color(index: int) -> tuple[int, int, int]:
    """Alternating light and dark blue-green, so neighbouring discs are told apart."""
    return (70, 170, 230) if index % 2 else (40, 120, 190)


def _discs() -> dict[str, SegmentCode]:
    rows = {}
    for index, (upper, lower, code) in enumerate(_DISCS):
        meaning = f"{upper}/{'S1' if lower == 'S' else lower} disc"
        rows[f"intervertebral_disc_{upper}_{lower}"] = SegmentCode(
            f"{upper}-{lower} intervertebral disc",
            ANATOMICAL_STRUCTURE,
            sct(code, meaning),
            _disc_color(index),
        )
    return rows


SPINE_CODES: dict[str, SegmentCode] = _discs() | {
    "intervertebral_disc": SegmentCode(
        "Intervertebral disc (level unknown)",
        ANATOMICAL_STRUCTURE,
        UNNUMBERED_DISC_TYPE,
        (120, 200, 255),
    ),
    "spinal_canal": SegmentCode(
        "Spinal canal", ANATOMICAL_STRUCTURE, sct("61853006", "Vertebral canal"), (255, 255, 180)
    ),
}
