"""Code-table rows for bones: AutoOrgan's skeleton groups, vertebrae, ribs, limbs and pelvis
(label names from hqllab/AutoOrgan labels.json).

Sources of the codes (value, scheme, meaning): TotalSegmentator's SNOMED CT mapping of its
classes (wasserth/TotalSegmentator, totalsegmentator/resources/totalsegmentator_snomed_mapping.csv),
which also gives most colours; checked against PS3.16 CID 7151 (Segmentation Property Types) as
pydicom's concept dictionary holds it; the rib codes also against the TG-263 to SNOMED CT
table of HL7 mCODE's radiotherapy value sets. Paired bones use the non-lateral type plus a CID 244
laterality (Femur + Left), as CID 7151 and TotalSegmentator do. Where TotalSegmentator codes hand
and foot phalanges alike (SCT 28641004), the anatomic region (Hand, Foot: CID 7151) tells them
apart. Codes not taken from TotalSegmentator are marked.
"""

from __future__ import annotations

from pipelines.segment_code import ANATOMICAL_STRUCTURE, SegmentCode, paired, sct

__all__ = ["SKELETON_CODES"]

HAND = sct("85562004", "Hand")  # CID 7151
FOOT = sct("56459004", "Foot")  # CID 7151
PHALANX = sct("28641004", "Phalanx structure")

# AutoOrgan's "Global" task: one label per bone group.
_GROUPS: dict[str, SegmentCode] = {
    "skull": SegmentCode("Skull", ANATOMICAL_STRUCTURE, sct("89546000", "Skull"), (245, 225, 200)),
    "vertebrae": SegmentCode(
        "Vertebrae", ANATOMICAL_STRUCTURE, sct("51282000", "Vertebra"), (200, 170, 130)
    ),
    "rib": SegmentCode("Ribs", ANATOMICAL_STRUCTURE, sct("113197003", "Rib"), (230, 210, 180)),
    # CID 7151 "Bone of upper limb" / "Bone of lower limb" (not in TotalSegmentator's table).
    "upper_limb": SegmentCode(
        "Upper limb bones",
        ANATOMICAL_STRUCTURE,
        sct("371195002", "Bone of upper limb"),
        (216, 111, 54),
    ),
    "lower_limb": SegmentCode(
        "Lower limb bones",
        ANATOMICAL_STRUCTURE,
        sct("72001000", "Bone of lower limb"),
        (216, 54, 56),
    ),
    # Both hip bones and the sacrum: SCT 118645006 "Structure of innominate bone and/or sacrum
    # and/or coccyx", the bony pelvis (TG-263's "Pelvic Bones"), whose PS3.16 meaning (CID 7304)
    # is "Pelvis"; CID 7151's "Pelvis" (816092008) is the body region. Not in TotalSegmentator.
    "hip": SegmentCode(
        "Pelvic bones", ANATOMICAL_STRUCTURE, sct("118645006", "Pelvis"), (216, 184, 54)
    ),
}

# (SNOMED CT code, display colour) per level, C1..L5.
_VERTEBRAE: dict[str, tuple[str, tuple[int, int, int]]] = {
    "C1": ("14806007", (242, 217, 182)),
    "C2": ("39976000", (23, 254, 219)),
    "C3": ("113205007", (60, 35, 0)),
    "C4": ("5329002", (97, 72, 37)),
    "C5": ("36978003", (134, 109, 74)),
    "C6": ("36054005", (171, 146, 111)),
    "C7": ("87391001", (208, 183, 148)),
    "T1": ("64864005", (174, 149, 114)),
    "T2": ("53733008", (211, 186, 151)),
    "T3": ("1626008", (248, 223, 188)),
    "T4": ("73071006", (29, 4, 225)),
    "T5": ("56401006", (66, 41, 6)),
    "T6": ("45296009", (103, 78, 43)),
    "T7": ("62487009", (140, 115, 80)),
    "T8": ("11068009", (177, 152, 117)),
    "T9": ("82687006", (214, 189, 154)),
    "T10": ("7610001", (251, 226, 191)),
    "T11": ("12989004", (32, 7, 228)),
    "T12": ("23215003", (69, 44, 9)),
    "L1": ("66794005", (245, 220, 185)),
    "L2": ("14293000", (26, 1, 222)),
    "L3": ("36470004", (63, 38, 3)),
    "L4": ("11994002", (100, 75, 40)),
    "L5": ("49668003", (137, 112, 77)),
}

# (SNOMED CT code, meaning, left colour, right colour) per rib, 1..12.
_RIBS: tuple[tuple[str, str, tuple[int, int, int], tuple[int, int, int]], ...] = (
    ("48535007", "First rib", (214, 54, 216), (91, 158, 253)),
    ("78247007", "Second rib", (181, 54, 216), (211, 216, 54)),
    ("25888004", "Third rib", (216, 54, 162), (216, 54, 59)),
    ("25523003", "Fourth rib", (54, 121, 216), (216, 54, 67)),
    ("15339008", "Fifth rib", (54, 216, 146), (157, 216, 54)),
    ("59558009", "Sixth rib", (121, 216, 54), (216, 54, 189)),
    ("24915002", "Seventh rib", (149, 54, 216), (216, 54, 132)),
    ("5953002", "Eighth rib", (216, 81, 54), (216, 203, 54)),
    ("22565002", "Ninth rib", (216, 54, 167), (216, 197, 54)),
    ("77644006", "Tenth rib", (54, 146, 216), (216, 159, 54)),
    ("58830002", "Eleventh rib", (158, 253, 91), (54, 135, 216)),
    ("43993008", "Twelfth rib", (216, 54, 86), (181, 216, 54)),
)


def _vertebrae() -> dict[str, SegmentCode]:
    return {
        f"vertebrae_{level}": SegmentCode(
            f"{level} vertebra", ANATOMICAL_STRUCTURE, sct(code, f"{level} vertebra"), color
        )
        for level, (code, color) in _VERTEBRAE.items()
    }


def _ribs() -> dict[str, SegmentCode]:
    rows: dict[str, SegmentCode] = {}
    for number, (code, meaning, left, right) in enumerate(_RIBS, start=1):
        description = "{Side} " + meaning[0].lower() + meaning[1:]
        rows |= paired(f"rib_{{side}}_{number}", description, sct(code, meaning), left, right)
    return rows


def _limbs_and_pelvis() -> dict[str, SegmentCode]:
    # TotalSegmentator codes these per side only for humerus, clavicle, scapula, hip and femur;
    # its non-lateral rows give the code and the left colour of the others.
    return (
        paired("humerus_{side}", "{Side} humerus", sct("85050009", "Humerus"),
               (71, 62, 248), (115, 46, 184))
        | paired("radius_{side}", "{Side} radius", sct("62413002", "Radius"), (162, 216, 54))
        | paired("ulna_{side}", "{Side} ulna", sct("23416004", "Ulna"), (178, 54, 216))
        | paired("carpal_{side}", "{Side} carpal bones",
                 sct("83936004", "Bone structure of carpus"), (216, 54, 205))
        | paired("metacarpal_{side}", "{Side} metacarpal bones", sct("36455000", "Metacarpal"),
                 (216, 54, 216))
        | paired("phalanges_hand_{side}", "{Side} phalanges of hand", PHALANX, (83, 54, 216),
                 anatomic_region=HAND)
        | paired("clavicula_{side}", "{Side} clavicle", sct("51299004", "Clavicle"),
                 (255, 236, 201), (191, 174, 149))
        | paired("scapula_{side}", "{Side} scapula", sct("79601000", "Scapula"),
                 (253, 230, 195), (187, 170, 144))
        | paired("hip_{side}", "{Side} hip bone", sct("29836001", "Hip"),
                 (230, 248, 62), (184, 46, 184))
        | {"sacrum": SegmentCode("Sacrum", ANATOMICAL_STRUCTURE, sct("54735007", "Sacrum"),
                                 (100, 216, 54))}
        | paired("femur_{side}", "{Side} femur", sct("71341001", "Femur"),
                 (248, 212, 62), (46, 184, 60))
        | paired("patella_{side}", "{Side} patella", sct("64234005", "Patella"), (229, 253, 91))
        | paired("tibia_{side}", "{Side} tibia", sct("12611008", "Tibia"), (216, 54, 146))
        | paired("fibula_{side}", "{Side} fibula", sct("87342007", "Fibula"), (54, 216, 67))
        | paired("tarsal_{side}", "{Side} tarsal bones",
                 sct("108371006", "Tarsus"), (195, 216, 54))
        | paired("metatarsal_{side}", "{Side} metatarsal bones", sct("53884002", "Metatarsal"),
                 (216, 151, 54))
        | paired("phalanges_feet_{side}", "{Side} phalanges of foot", PHALANX, (54, 200, 216),
                 anatomic_region=FOOT)
    )  # fmt: skip


SKELETON_CODES: dict[str, SegmentCode] = _GROUPS | _vertebrae() | _ribs() | _limbs_and_pelvis()
