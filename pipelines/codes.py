"""The one curated code table for segments: machine name -> coded category/type and colour,
plus the concepts pipelines use for their SR content.

Every pipeline takes its segment codes from here (and extends this table when it adds
structures), so that the same structure is coded the same way in every SEG the node writes.
Categories and types are SNOMED CT concepts from PS3.16 CID 7150 (Segmentation Property
Categories) and CID 7151/7166 (Segmentation Property Types); a paired structure has its
non-lateral type plus a CID 244 laterality (Kidney + Right), written as the SEG segment's
SegmentedPropertyTypeModifierCodeSequence and the SR finding site's laterality. Measurement
units are UCUM.

Sources: organ codes and most colours from TotalSegmentator's SNOMED CT mapping
(wasserth/TotalSegmentator, totalsegmentator/resources/totalsegmentator_snomed_mapping.csv),
meanings as PS3.16 (pydicom's concept dictionary) gives them; bone rows are in
`pipelines.code_table_skeleton`. Concepts without a standard code use the local coding scheme
`LOCAL_SCHEME` ("99DCMNODE", PS3.3 8.2: private designators begin with "99"); each says so.
"""

from __future__ import annotations

from pipelines.code_table_skeleton import SKELETON_CODES
from pipelines.code_table_spine import SPINE_CODES
from pipelines.result import Code, Evaluation, Segment
from pipelines.segment_code import (
    ANATOMICAL_STRUCTURE,
    LEFT,
    LOCAL_SCHEME,
    LOCAL_SCHEME_NAME,
    MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    RIGHT,
    TISSUE,
    SegmentCode,
    paired,
    sct,
)

__all__ = [
    "ANATOMICAL_STRUCTURE",
    "GRAM",
    "LEFT",
    "LESIONS",
    "LEVEL_ANCHOR",
    "LOCAL_SCHEME",
    "LOCAL_SCHEME_NAME",
    "LONG_AXIS",
    "LV_EJECTION_FRACTION",
    "LV_END_DIASTOLIC_VOLUME",
    "LV_END_SYSTOLIC_VOLUME",
    "LV_MASS",
    "MAXIMUM",
    "MEAN",
    "MEAN_PREDICTIVE_ENTROPY",
    "MILLILITER",
    "MILLIMETER",
    "MORPHOLOGICALLY_ABNORMAL_STRUCTURE",
    "NO_UNITS",
    "NUMBER_OF_LESIONS",
    "PERCENT",
    "RECOMMENDATION",
    "REVIEW_RECOMMENDED",
    "RIGHT",
    "SEGMENT_CODES",
    "STROKE_VOLUME",
    "TISSUE",
    "VOLUME",
    "SegmentCode",
    "review_recommended",
    "segment_for",
]

# --- SR concepts ---------------------------------------------------------------------------

VOLUME = Code("118565006", "SCT", "Volume")  # CID 7469/7472
MILLILITER = Code("ml", "UCUM", "milliliter")
MILLIMETER = Code("mm", "UCUM", "millimeter")
NO_UNITS = Code("1", "UCUM", "no units")  # CID 7181, for dimensionless ratios

# TID 300 Derivation (CID 3488 Min/Max/Mean): "Maximum" marks the largest of several lesions
# (largest tumor volume: VOLUME + MAXIMUM; longest diameter: LONG_AXIS + MAXIMUM).
MAXIMUM = sct("56851009", "Maximum")
MEAN = sct("373098007", "Mean")

# CID 7470 Linear Measurements: the longest in-plane diameter, as TID 1410/1500 reports
# measure a lesion's long axis on an axial image (RECIST).
LONG_AXIS = sct("103339001", "Long axis")

# How many lesions (tumors) were found: a SNOMED CT observable entity (PS3.16 uses it, no
# CID); the unit is a UCUM annotation (equal to 1), so the count reads "3 lesions".
NUMBER_OF_LESIONS = sct("246206008", "Number of lesions")
LESIONS = Code("{lesions}", "UCUM", "lesions")

# Mean normalised predictive entropy H(p)/ln(C) of the softmax inside a segment, in [0, 1]:
# no standard code exists for a model's predictive uncertainty (DCM has texture entropies
# only), so this is a local code; unit NO_UNITS.
MEAN_PREDICTIVE_ENTROPY = Code("ENTROPY_MEAN", LOCAL_SCHEME, "Mean normalized predictive entropy")

# "Review recommended" qualitative evaluation (TID 1500 CODE item): the concept name is DCM
# 121075 "Recommendation" (PS3.16 Annex D); no standard code says "have a reader check this
# segmentation" (the DCM review codes are Key Object Selection titles, CID 7010, and SCT
# 64957009 "Uncertain" is a qualifier of risk), so the value is a local code.
RECOMMENDATION = Code("121075", "DCM", "Recommendation")
REVIEW_RECOMMENDED = Code("SEG_REVIEW", LOCAL_SCHEME, "Review of segmentation recommended")


# Which landmark the vertebral level numbering of mr_spine was counted from (TID 1500 CODE
# item; the value is the landmark's own structure code, e.g. CID 7151 "C2/C3 disc"). No
# standard concept names "anchor of a level count", so the name is a local code.
LEVEL_ANCHOR = Code("LEVEL_ANCHOR", LOCAL_SCHEME, "Vertebral levels anchored by")


# LV function (TID 1500 measurements of cmr_lv), from PS3.16: CID 3468/3469/3835 (cardiac
# ED/ES volumes), CID 3835 (stroke volume), CID 3833 (ejection fraction), CID 12203 (mass).
LV_END_DIASTOLIC_VOLUME = Code("8821-1", "LN", "Left Ventricular ED Volume")
LV_END_SYSTOLIC_VOLUME = Code("8823-7", "LN", "Left Ventricular ES Volume")
STROKE_VOLUME = sct("90096001", "Stroke Volume")
LV_EJECTION_FRACTION = Code("8811-2", "LN", "Left ventricular ejection fraction by MR")
LV_MASS = Code("18087-7", "LN", "Left Ventricle Mass")
PERCENT = Code("%", "UCUM", "percent")
GRAM = Code("g", "UCUM", "gram")


def review_recommended(segment_label: int | None = None) -> Evaluation:
    """The "Recommendation: review of segmentation recommended" evaluation of one segment (or
    of the whole result)."""
    return Evaluation(RECOMMENDATION, REVIEW_RECOMMENDED, segment_label)


# --- segment codes -------------------------------------------------------------------------

LIVER = sct("10200004", "Liver")
LUNG = sct("39607008", "Lung")


def _organ(description: str, code: str, meaning: str, color: tuple[int, int, int]) -> SegmentCode:
    return SegmentCode(description, ANATOMICAL_STRUCTURE, sct(code, meaning), color)


# ct_basic's structures (the lungs as Lung + laterality, per CID 7151's convention).
_CT_BASIC: dict[str, SegmentCode] = {
    "body": _organ("Body", "38266002", "Entire body", (177, 122, 101)),
    **paired("lung_{side}", "{Side} lung", LUNG, (128, 174, 128), (111, 184, 210)),
    "airway": _organ("Airway", "89187006", "Airway structure", (182, 228, 255)),
    "bone": SegmentCode("Bone", TISSUE, sct("272673000", "Bone"), (241, 214, 145)),
    "adipose_tissue": SegmentCode("Adipose tissue", TISSUE, sct("55603005", "Fat"), (230, 220, 70)),
}

# AutoOrgan's organ task and the AbdomenAtlas organs (all in CID 7151).
_ORGANS: dict[str, SegmentCode] = {
    "spleen": _organ("Spleen", "78961009", "Spleen", (50, 170, 60)),
    **paired("kidney_{side}", "{Side} kidney", sct("64033007", "Kidney"),
             (46, 138, 184), (34, 102, 136)),
    "gallbladder": _organ("Gallbladder", "28231008", "Gallbladder", (54, 216, 119)),
    "liver": SegmentCode("Liver", ANATOMICAL_STRUCTURE, LIVER, (40, 140, 40)),
    "stomach": _organ("Stomach", "69695003", "Stomach", (180, 70, 160)),
    "pancreas": _organ("Pancreas", "15776009", "Pancreas", (60, 150, 80)),
    **paired("lung_upper_lobe_{side}", "{Side} upper lobe of lung",
             sct("45653009", "Upper lobe of lung"), (71, 232, 244), (100, 218, 227)),
    **paired("lung_lower_lobe_{side}", "{Side} lower lobe of lung",
             sct("90572001", "Lower lobe of lung"), (34, 195, 207), (26, 144, 153)),
    # Its type names the side already; the laterality repeats it so that every "_right"
    # structure carries Right.
    "lung_middle_lobe_right": SegmentCode(
        "Middle lobe of right lung", ANATOMICAL_STRUCTURE,
        sct("72481006", "Middle lobe of right lung"), (63, 181, 190), RIGHT,
    ),
    "esophagus": _organ("Esophagus", "32849002", "Esophagus", (190, 90, 170)),
    "trachea": _organ("Trachea", "44567001", "Trachea", (0, 180, 200)),
    "thyroid_gland": _organ("Thyroid gland", "69748006", "Thyroid", (250, 210, 60)),
    "small_bowel": _organ("Small bowel", "30315005", "Small intestine", (160, 60, 180)),
    "duodenum": _organ("Duodenum", "38848004", "Duodenum", (170, 80, 190)),
    "colon": _organ("Colon", "71854001", "Colon", (150, 40, 170)),
    "urinary_bladder": _organ("Urinary bladder", "89837001", "Bladder", (54, 94, 216)),
    "prostate": _organ("Prostate", "41216001", "Prostate", (91, 253, 156)),
    "heart": _organ("Heart", "80891009", "Heart", (180, 0, 40)),
    "aorta": _organ("Aorta", "15825003", "Aorta", (216, 108, 54)),
    "brain": _organ("Brain", "12738006", "Brain", (216, 54, 149)),
    "spinal_cord": _organ("Spinal cord", "2748008", "Spinal cord", (255, 215, 0)),
    # cmr_lv: the LV cavity is coded as the chamber (CID 7151 "Left ventricle", as
    # TotalSegmentator codes heart_ventricle_left); the myocardium CID 12305's row.
    "lv_blood_pool": _organ("LV blood pool", "87878005", "Left ventricle", (220, 60, 60)),
    "lv_myocardium": _organ("LV myocardium", "49848007", "Left Ventricle Myocardium",
                            (240, 190, 60)),
    "inferior_vena_cava": _organ("Inferior vena cava", "64131007", "Inferior vena cava",
                                 (0, 70, 200)),
}  # fmt: skip

# Lesions: CID 7150 "Morphologically Abnormal Structure", CID 7151 "Neoplasm", located by the
# anatomic region (TotalSegmentator's liver_tumor row).
_LESIONS: dict[str, SegmentCode] = {
    "liver_tumor": SegmentCode(
        "Liver tumor",
        MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        sct("108369006", "Neoplasm"),
        (255, 0, 200),
        anatomic_region=LIVER,
    ),
}


def _merged(*tables: dict[str, SegmentCode]) -> dict[str, SegmentCode]:
    merged: dict[str, SegmentCode] = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        if twice:
            raise ValueError(f"structure names in two code tables: {sorted(twice)}")
        merged |= table
    return merged


SEGMENT_CODES: dict[str, SegmentCode] = _merged(
    _CT_BASIC, _ORGANS, SKELETON_CODES, SPINE_CODES, _LESIONS
)


def segment_for(name: str, label: int) -> Segment:
    """The segment-table row for a curated structure name; unknown names are a bug."""
    try:
        code = SEGMENT_CODES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the curated code table (pipelines/codes.py)") from None
    return Segment(
        label,
        name,
        code.description,
        code.category,
        code.type,
        code.color,
        anatomic_region=code.anatomic_region,
        laterality=code.laterality,
    )
