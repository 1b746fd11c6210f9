"""Routing: every operator, absent values, all matching routes, validation at load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset

from dicom_node.config import load_config
from dicom_node.config.models import RouteConfig
from dicom_node.errors import ConfigError
from dicom_node.routing import (
    ConditionExplanation,
    RouteDecision,
    SeriesDescriptor,
    describe_series_folder,
    evaluate_routes,
    explain_routes,
)
from tests.support.peers import shared_data


def chest_ct_header() -> Dataset:
    dataset = Dataset()
    dataset.Modality = "CT"
    dataset.BodyPartExamined = "CHEST"
    dataset.Manufacturer = "GE MEDICAL SYSTEMS"
    dataset.SeriesDescription = "Lung 1.25mm"
    dataset.SliceThickness = "1.25"
    dataset.SeriesNumber = 3
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.PixelSpacing = ["0.7", "0.7"]
    dataset.StudyDescription = ""  # present but empty: counts as absent
    dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.10.1001.1.1"
    return dataset  # PatientAge is absent


SERIES = SeriesDescriptor(
    chest_ct_header(),
    instance_count=120,
    calling_ae_title="CT_SCANNER_1",
    called_ae_title="DICOM_NODE",
)


def route(match: dict[str, Any], name: str = "r", **fields: Any) -> RouteConfig:
    return RouteConfig.model_validate(
        {"name": name, "pipeline": "ct_basic", "match": match, **fields}
    )


def matches(field: str, condition: Any) -> bool:
    return bool(evaluate_routes([route({field: condition})], SERIES))


EQUALS = [
    ("Modality", "CT", True),
    ("Modality", {"equals": "CT"}, True),
    ("Modality", "ct", False),
    ("Modality", {"equals": "ct", "case_insensitive": True}, True),
    ("Modality", "MR", False),
    ("SliceThickness", 1.25, True),  # a YAML number compares numerically
    ("SliceThickness", "1.250", False),  # text compares exactly
    ("SeriesNumber", 3, True),
    ("ImageType", "ORIGINAL\\PRIMARY\\AXIAL", True),  # multi-valued: the whole value
    ("ImageType", "AXIAL", False),
    ("PatientAge", "050Y", False),  # absent
    ("StudyDescription", "x", False),  # empty
    ("called_ae", "DICOM_NODE", True),
    ("instance_count", 120, True),
]

ONE_OF = [
    ("Manufacturer", {"one_of": ["SIEMENS", "GE MEDICAL SYSTEMS"]}, True),
    ("Manufacturer", {"one_of": ["SIEMENS", "PHILIPS"]}, False),
    ("Manufacturer", {"one_of": ["ge medical systems"]}, False),
    ("Manufacturer", {"one_of": ["ge medical systems"], "case_insensitive": True}, True),
    ("SeriesNumber", {"one_of": [1, 2, 3]}, True),
    ("calling_ae", {"one_of": ["CT_SCANNER_1", "ORTHANC"]}, True),
    ("PatientAge", {"one_of": ["050Y"]}, False),
]

REGEX = [
    ("SeriesDescription", {"regex": "Lung.*"}, True),
    ("SeriesDescription", {"regex": "Lung"}, False),  # anchored: the whole value must match
    ("SeriesDescription", {"regex": "1\\.25mm"}, False),
    ("SeriesDescription", {"regex": ".*1\\.25mm"}, True),
    ("SeriesDescription", {"regex": "lung.*"}, False),
    ("SeriesDescription", {"regex": "(?i)lung.*"}, True),
    ("ImageType", {"regex": "ORIGINAL\\\\PRIMARY\\\\.*"}, True),  # joined with backslashes
    ("PatientAge", {"regex": ".*"}, False),
    ("StudyDescription", {"regex": ".*"}, False),
]

RANGE = [
    ("SliceThickness", {"range": {"min": 1, "max": 2}}, True),
    ("SliceThickness", {"range": {"min": 1.25, "max": 1.25}}, True),  # inclusive
    ("SliceThickness", {"range": {"max": 1}}, False),
    ("SliceThickness", {"range": {"min": 2}}, False),
    ("instance_count", {"range": {"min": 50}}, True),
    ("instance_count", {"range": {"max": 119}}, False),
    ("Modality", {"range": {"min": 0}}, False),  # not a number
    ("PixelSpacing", {"range": {"min": 0}}, False),  # more than one value
    ("PatientAge", {"range": {"min": 0}}, False),
]

CONTAINS = [
    ("ImageType", {"contains": "AXIAL"}, True),
    ("ImageType", {"contains": "LOCALIZER"}, False),
    ("ImageType", {"contains": "axial"}, False),
    ("ImageType", {"contains": "axial", "case_insensitive": True}, True),
    ("ImageType", {"contains": "AX"}, False),  # one of the values, not a substring
    ("PixelSpacing", {"contains": 0.7}, True),
    ("Modality", {"contains": "CT"}, True),  # single-valued: its one value
    ("PatientAge", {"contains": "050Y"}, False),
]

NOT = [
    ("Modality", {"not": "MR"}, True),
    ("Modality", {"not": {"equals": "CT"}}, False),
    ("ImageType", {"not": {"contains": "LOCALIZER"}}, True),
    ("PatientAge", {"not": {"regex": ".*"}}, True),  # absent: every condition fails, not holds
    ("StudyDescription", {"not": {"equals": "x"}}, True),
    ("Modality", {"not": {"not": "CT"}}, True),
]

ALL_OF = [
    ("ImageType", {"all_of": [{"contains": "AXIAL"}, {"not": {"contains": "LOCALIZER"}}]}, True),
    ("ImageType", {"all_of": [{"contains": "AXIAL"}, {"contains": "LOCALIZER"}]}, False),
]


@pytest.mark.parametrize(("field", "condition", "expected"), EQUALS)
def test_equals(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), ONE_OF)
def test_one_of(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), REGEX)
def test_regex(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), RANGE)
def test_range(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), CONTAINS)
def test_contains(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), NOT)
def test_not(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


@pytest.mark.parametrize(("field", "condition", "expected"), ALL_OF)
def test_all_of(field: str, condition: Any, expected: bool) -> None:
    assert matches(field, condition) is expected


def test_absent_ae_title_fails_its_condition() -> None:
    series = SeriesDescriptor(chest_ct_header(), instance_count=1)
    assert evaluate_routes([route({"calling_ae": {"regex": ".*"}})], series) == []


def test_conditions_of_a_route_must_all_hold() -> None:
    assert evaluate_routes([route({"Modality": "CT", "BodyPartExamined": "HEAD"})], SERIES) == []


def test_every_matching_route_applies_in_config_order() -> None:
    routes = [
        route({"Modality": "CT"}, name="ct", send_to=["pacs", "viewer"]),
        route({"Modality": "MR"}, name="mr"),
        route({}, name="everything"),
    ]
    assert evaluate_routes(routes, SERIES) == [
        RouteDecision("ct", "ct_basic", ("pacs", "viewer")),
        RouteDecision("everything", "ct_basic", ()),
    ]


def test_regexes_are_compiled_at_load_not_per_series(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [route({"SeriesDescription": {"regex": "(?i).*lung.*"}})]

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("re.compile called while evaluating")

    monkeypatch.setattr(re, "compile", no_compiling)
    assert len(evaluate_routes(routes, SERIES)) == 1


def test_explain_gives_each_condition_with_its_value_and_result() -> None:
    match = {
        "ImageType": {"contains": "AXIAL"},
        "SliceThickness": {"range": {"min": 0.5, "max": 1}},
        "PatientAge": {"not": {"regex": "0[0-1].Y"}},
    }
    (explanation,) = explain_routes([route(match, send_to=["pacs"])], SERIES)
    assert (explanation.route, explanation.matched, explanation.send_to) == ("r", False, ("pacs",))
    assert explanation.conditions == (
        ConditionExplanation("ImageType", 'contains "AXIAL"', "ORIGINAL\\PRIMARY\\AXIAL", True),
        ConditionExplanation("SliceThickness", "range 0.5..1", "1.25", False),
        ConditionExplanation("PatientAge", 'not (regex "0[0-1].Y")', None, True),
    )


def write_routes(tmp_path: Path, routes: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(
        "destinations:\n  pacs: {kind: dimse, ae_title: PACS, host: 127.0.0.1, port: 104}\n"
        f"routes:\n{routes}",
        encoding="utf-8",
    )
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


def test_a_bad_regex_is_refused_with_its_path(tmp_path: Path) -> None:
    path = write_routes(
        tmp_path,
        "  - name: r\n"
        "    pipeline: ct_basic\n"
        "    match:\n"
        "      Modality: CT\n"
        "      SeriesDescription: {regex: '(lung'}\n",
    )
    assert problems_of(path) == [
        "routes.0.match.SeriesDescription.regex (line 8): invalid regular expression:"
        " missing ), unterminated subpattern at position 0"
    ]


INVALID_MATCHES = [
    ("Modalty: CT", "routes.0.match.Modalty", "unknown DICOM keyword 'Modalty' (did you mean"),
    ("modality: CT", "routes.0.match.modality", "did you mean 'Modality'?"),
    ("PixelData: {regex: x}", "routes.0.match.PixelData", "bulk data cannot be matched"),
    ("ReferencedImageSequence: {regex: x}", "routes.0.match.ReferencedImageSequence", "VR SQ"),
    ("TransferSyntaxUID: x", "routes.0.match.TransferSyntaxUID", "file meta attribute"),
    ("Modality: {equal: CT}", "routes.0.match.Modality", "unknown operator 'equal'"),
    ("Modality: {equals: CT, regex: C.*}", "routes.0.match.Modality", "exactly one operator"),
    ("Modality: [CT, MR]", "routes.0.match.Modality", "a list is not a condition"),
    ("Modality: yes", "routes.0.match.Modality", "boolean"),
    ("Modality: ''", "routes.0.match.Modality", "empty value never matches"),
    ("Modality:", "routes.0.match.Modality", "a value is required"),
    ("StudyDate: 2024-01-01", "routes.0.match.StudyDate", "quote the value"),
    ("Modality: {regex: C.*, case_insensitive: true}", "routes.0.match.Modality", "(?i)"),
    ("SliceThickness: {range: {min: 5, max: 1}}", "routes.0.match.SliceThickness.range", "min"),
    ("SliceThickness: {range: {min: thin}}", "routes.0.match.SliceThickness.range.min", "number"),
    ("SliceThickness: {range: {}}", "routes.0.match.SliceThickness.range", "min, max or both"),
    ("Manufacturer: {one_of: []}", "routes.0.match.Manufacturer.one_of", "at least 1 item"),
    ("SeriesDescription: {not: {regex: '['}}", "routes.0.match.SeriesDescription.not.regex", "set"),
    ("ImageType: {all_of: [{regex: '('}]}", "routes.0.match.ImageType.all_of.0.regex", "regular"),
]


@pytest.mark.parametrize(("line", "path", "message"), INVALID_MATCHES)
def test_invalid_conditions_are_refused_with_their_path(
    tmp_path: Path, line: str, path: str, message: str
) -> None:
    config = write_routes(
        tmp_path, f"  - name: r\n    pipeline: ct_basic\n    match:\n      {line}\n"
    )
    (problem,) = problems_of(config)
    assert problem.startswith(f"{path} (line 7): ")
    assert message in problem


def test_every_bad_condition_is_listed_at_once(tmp_path: Path) -> None:
    path = write_routes(
        tmp_path,
        "  - name: r\n    pipeline: ct_basic\n    match:\n"
        "      Modalty: CT\n      SeriesDescription: {regex: '('}\n"
        "  - {name: s, pipeline: ct_basic, match: {ImageType: {contain: AXIAL}}}\n",
    )
    paths = [problem.split(" ")[0] for problem in problems_of(path)]
    assert paths == [
        "routes.0.match.Modalty",
        "routes.0.match.SeriesDescription.regex",
        "routes.1.match.ImageType",
    ]


def test_unknown_pipeline_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(write_routes(tmp_path, "  - {name: r, pipeline: ct_bsic}\n"))
    assert problem.startswith("routes.0.pipeline (line 4): unknown pipeline 'ct_bsic' (known: ")


def test_a_destination_listed_twice_is_refused(tmp_path: Path) -> None:
    path = write_routes(tmp_path, "  - {name: r, pipeline: ct_basic, send_to: [pacs, pacs]}\n")
    assert problems_of(path) == ["routes.0.send_to (line 4): destination 'pacs' is listed twice"]


def test_series_folder_is_described_by_its_first_instance() -> None:
    series = describe_series_folder(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS"))
    assert (series.dataset.Modality, series.instance_count) == ("MR", 35)
    assert "PixelData" not in series.dataset


def test_series_folder_counts_only_instances_of_its_series(tmp_path: Path) -> None:
    mr = sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").iterdir())[:3]
    ct = sorted(shared_data("ct", "totalseg_example_ct_dicom", "dicom").iterdir())[0]
    for number, source in enumerate(mr):
        (tmp_path / f"{number}.dcm").symlink_to(source)
    (tmp_path / "9.dcm").symlink_to(ct)
    (tmp_path / "README.txt").write_text("not DICOM", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert describe_series_folder(tmp_path).instance_count == 3


def test_folder_without_dicom_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="no DICOM files"):
        describe_series_folder(tmp_path)
