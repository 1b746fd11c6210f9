"""The curated code table (pipelines.codes): every structure a pipeline labels is coded, and the
codes are well-formed (PS3.16 CID 7150/7151/244, SNOMED CT identifiers, UCUM units)."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from pipelines.codes import (
    GRAM,
    LEFT,
    LESIONS,
    LEVEL_ANCHOR,
    LOCAL_SCHEME,
    LONG_AXIS,
    LV_EJECTION_FRACTION,
    LV_END_DIASTOLIC_VOLUME,
    LV_END_SYSTOLIC_VOLUME,
    LV_MASS,
    MAXIMUM,
    MEAN,
    MEAN_PREDICTIVE_ENTROPY,
    MILLILITER,
    MILLIMETER,
    MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    NO_UNITS,
    NUMBER_OF_LESIONS,
    PERCENT,
    RECOMMENDATION,
    REVIEW_RECOMMENDED,
    RIGHT,
    SEGMENT_CODES,
    STROKE_VOLUME,
    VOLUME,
    review_recommended,
    segment_for,
)
from pipelines.result import Code, Evaluation
from tests.support.peers import shared_data

ABDOMEN = (
    "spleen",
    "liver",
    "kidney_left",
    "kidney_right",
    "stomach",
    "gallbladder",
    "pancreas",
    "aorta",
    "inferior_vena_cava",
)
# CID 7150 Segmentation Property Categories the table may use.
CATEGORIES = {"91723000", "85756007", "49755003"}
SR_CODES = {
    "VOLUME": VOLUME,
    "MAXIMUM": MAXIMUM,
    "MEAN": MEAN,
    "LONG_AXIS": LONG_AXIS,
    "NUMBER_OF_LESIONS": NUMBER_OF_LESIONS,
    "MEAN_PREDICTIVE_ENTROPY": MEAN_PREDICTIVE_ENTROPY,
    "RECOMMENDATION": RECOMMENDATION,
    "REVIEW_RECOMMENDED": REVIEW_RECOMMENDED,
    "LEVEL_ANCHOR": LEVEL_ANCHOR,
    "LV_END_DIASTOLIC_VOLUME": LV_END_DIASTOLIC_VOLUME,
    "LV_END_SYSTOLIC_VOLUME": LV_END_SYSTOLIC_VOLUME,
    "STROKE_VOLUME": STROKE_VOLUME,
    "LV_EJECTION_FRACTION": LV_EJECTION_FRACTION,
    "LV_MASS": LV_MASS,
}
UNITS = (MILLILITER, MILLIMETER, NO_UNITS, LESIONS, PERCENT, GRAM)


def autoorgan_names() -> list[str]:
    """Every structure name of every AutoOrgan task, the "Global " group included."""
    path = shared_data("label_maps", "autoorgan") / "labels.json"
    groups: dict[str, dict[str, int]] = json.loads(path.read_text())
    assert len(groups) == 7
    return [name for group in groups.values() for name in group]


def all_codes() -> list[tuple[str, Code]]:
    return [
        (name, code)
        for name, row in SEGMENT_CODES.items()
        for code in (row.category, row.type, row.laterality, row.anatomic_region)
        if code is not None
    ] + list(SR_CODES.items())


def is_sctid(value: str) -> bool:
    """A SNOMED CT concept identifier: digits, a concept partition ("00" or "10") and a valid
    Verhoeff check digit (SNOMED CT Technical Implementation Guide)."""
    if not value.isdigit() or not 6 <= len(value) <= 18 or value[-3:-1] not in ("00", "10"):
        return False
    check = 0
    for position, digit in enumerate(int(d) for d in reversed(value)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][digit]]
    return check == 0


_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


# --- coverage ------------------------------------------------------------------------------


def test_every_autoorgan_label_has_codes() -> None:
    assert [name for name in autoorgan_names() if name not in SEGMENT_CODES] == []


def test_autoorgan_labels_include_the_global_groups() -> None:
    global_groups = {"skull", "vertebrae", "rib", "upper_limb", "hip", "lower_limb"}
    assert global_groups <= set(autoorgan_names())


def test_every_abdomen_organ_and_the_liver_tumor_have_codes() -> None:
    assert [name for name in (*ABDOMEN, "liver_tumor") if name not in SEGMENT_CODES] == []


# --- completeness and form -----------------------------------------------------------------


def test_every_description_is_a_short_label() -> None:
    bad = [name for name, row in SEGMENT_CODES.items() if not 0 < len(row.description) <= 64]
    assert bad == []  # SegmentLabel is a DICOM LO


def test_every_category_is_a_segmentation_property_category() -> None:
    bad = [name for name, row in SEGMENT_CODES.items() if row.category.value not in CATEGORIES]
    assert bad == []


def test_every_colour_is_an_rgb_triple() -> None:
    bad = [
        name
        for name, row in SEGMENT_CODES.items()
        if len(row.color) != 3 or not all(0 <= channel <= 255 for channel in row.color)
    ]
    assert bad == []


def test_every_code_has_a_meaning() -> None:
    assert [name for name, code in all_codes() if not code.meaning.strip()] == []


def test_every_snomed_code_is_a_concept_identifier() -> None:
    bad = [
        (name, code.value)
        for name, code in all_codes()
        if code.scheme_designator == "SCT" and not is_sctid(code.value)
    ]
    assert bad == []


def test_the_concept_identifier_check_rejects_a_typo() -> None:
    assert (is_sctid("64033007"), is_sctid("64033008")) == (True, False)


def test_codes_use_only_standard_schemes_or_the_local_one() -> None:
    schemes = {code.scheme_designator for _, code in all_codes()}
    assert schemes <= {"SCT", "DCM", "LN", "UCUM", LOCAL_SCHEME}


def test_the_local_scheme_is_a_private_designator() -> None:
    assert LOCAL_SCHEME.startswith("99")


def test_code_values_fit_a_short_string() -> None:
    assert [name for name, code in all_codes() if not 0 < len(code.value) <= 16] == []


def test_one_code_has_one_meaning() -> None:
    meanings: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, code in all_codes():
        meanings[(code.value, code.scheme_designator)].add(code.meaning)
    assert {key: m for key, m in meanings.items() if len(m) > 1} == {}


def test_no_two_structures_are_coded_alike() -> None:
    names: dict[tuple[Code, Code, Code | None, Code | None], list[str]] = defaultdict(list)
    for name, row in SEGMENT_CODES.items():
        names[(row.category, row.type, row.laterality, row.anatomic_region)].append(name)
    assert [group for group in names.values() if len(group) > 1] == []


def test_no_two_structures_share_a_description() -> None:
    names: dict[str, list[str]] = defaultdict(list)
    for name, row in SEGMENT_CODES.items():
        names[row.description].append(name)
    assert [group for group in names.values() if len(group) > 1] == []


# --- laterality ----------------------------------------------------------------------------


def test_left_structures_carry_left() -> None:
    left = [row.laterality for name, row in SEGMENT_CODES.items() if "left" in name.split("_")]
    assert len(left) > 30
    assert set(left) == {LEFT}


def test_right_structures_carry_right() -> None:
    right = [row.laterality for name, row in SEGMENT_CODES.items() if "right" in name.split("_")]
    assert len(right) > 30
    assert set(right) == {RIGHT}


def test_unsided_structures_carry_no_laterality() -> None:
    sided = [
        name
        for name, row in SEGMENT_CODES.items()
        if row.laterality is not None and not {"left", "right"} & set(name.split("_"))
    ]
    assert sided == []


def test_paired_structures_share_their_non_lateral_type() -> None:
    assert SEGMENT_CODES["kidney_left"].type == SEGMENT_CODES["kidney_right"].type


def test_lateral_types_do_not_name_a_side_twice() -> None:
    """CID 7151 convention: a paired structure is its non-lateral type plus a laterality."""
    named = [
        name
        for name, row in SEGMENT_CODES.items()
        if row.laterality is not None and row.type.meaning.lower().startswith(("left ", "right "))
    ]
    assert named == []


def test_segment_for_fills_the_laterality() -> None:
    assert segment_for("kidney_right", 2).laterality == RIGHT


def test_segment_for_fills_the_anatomic_region() -> None:
    assert segment_for("liver_tumor", 2).anatomic_region == Code("10200004", "SCT", "Liver")


def test_segment_for_an_unknown_name_raises() -> None:
    with pytest.raises(KeyError, match="'spleen_left' is not in the curated code table"):
        segment_for("spleen_left", 1)


# --- lesions and SR concepts ---------------------------------------------------------------


def test_liver_tumor_is_a_neoplasm_in_the_liver() -> None:
    row = SEGMENT_CODES["liver_tumor"]
    coded = (row.category, row.type.value, row.anatomic_region and row.anatomic_region.value)
    assert coded == (MORPHOLOGICALLY_ABNORMAL_STRUCTURE, "108369006", "10200004")


def test_units_are_ucum() -> None:
    assert {unit.scheme_designator for unit in UNITS} == {"UCUM"}


def test_review_recommended_is_a_recommendation_of_one_segment() -> None:
    assert review_recommended(3) == Evaluation(RECOMMENDATION, REVIEW_RECOMMENDED, 3)


def test_standard_sr_concepts_are_ps3_16_concepts() -> None:
    """Every SR concept of a standard scheme is in DICOM's concept dictionary (as pydicom
    ships PS3.16) under that meaning (a SNOMED CT semantic tag aside): none is invented."""
    from pydicom.sr._concepts_dict import concepts

    def meanings(code: Code) -> set[str]:
        table = concepts.get(code.scheme_designator, {})
        found = {
            m for entry in table.values() for value, (m, _) in entry.items() if value == code.value
        }
        return found | {re.sub(r" \([a-z ]+\)$", "", m) for m in found}

    wrong = {
        name: sorted(meanings(code))
        for name, code in SR_CODES.items()
        if code.scheme_designator != LOCAL_SCHEME and code.meaning not in meanings(code)
    }
    assert wrong == {}
