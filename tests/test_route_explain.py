"""`dicom-node route explain`: the real CLI on a real series folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.peers import shared_data

CONFIG = """\
node: {ae_title: ROUTER}
destinations:
  pacs: {kind: dimse, ae_title: PACS, host: 127.0.0.1, port: 104}
routes:
  - name: chest-ct
    match:
      Modality: CT
      ImageType: {contains: AXIAL}
    pipeline: ct_basic
    send_to: [pacs]
  - name: brain-mr
    match:
      Modality: {one_of: [MR]}
      BodyPartExamined: {equals: brain, case_insensitive: true}
      SeriesDescription: {regex: "(?i)t1.*"}
      SliceThickness: {range: {min: 1, max: 5}}
      instance_count: {range: {min: 30}}
      ContrastBolusAgent: {not: {regex: ".*"}}
      calling_ae: {one_of: [MR_SCANNER]}
    pipeline: ct_basic
  - name: everything
    pipeline: ct_basic
"""


ROUTE_EXPLAIN = [sys.executable, "-m", "dicom_node", "route", "explain"]


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def explain(config: Path, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROUTE_EXPLAIN, "--config", str(config), *options, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def mr_folder() -> Path:
    return shared_data("mr", "dcmqa_decubitus_t1_sag_HFS")


def cells(line: str) -> list[str]:
    """A condition line's columns: field, operator, value, result."""
    return re.split(r" {2,}", line.strip())


def test_explain_prints_each_condition_with_value_and_result(
    tmp_path: Path, mr_folder: Path
) -> None:
    result = explain(write_config(tmp_path), mr_folder, "--calling-ae", "MR_SCANNER")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    uid = "1.3.12.2.1107.5.2.43.67060.2022040715044210837860713.0.0.0"
    assert lines[:4] == [
        f'series "{uid}": 35 instances in {mr_folder}',
        'calling_ae "MR_SCANNER", called_ae "ROUTER"',
        "",
        "route chest-ct: no match (pipeline ct_basic, send to pacs)",
    ]
    assert [cells(line) for line in lines[4:6]] == [
        ["Modality", 'equals "CT"', '"MR"', "false"],
        ["ImageType", 'contains "AXIAL"', '"ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D"', "false"],
    ]
    assert lines[6:8] == ["", "route brain-mr: MATCH (pipeline ct_basic, results kept here only)"]
    assert [cells(line) for line in lines[8:15]] == [
        ["Modality", 'one of ["MR"]', '"MR"', "true"],
        ["BodyPartExamined", 'equals "brain" (case-insensitive)', '"BRAIN"', "true"],
        ["SeriesDescription", 'regex "(?i)t1.*"', '"t1_fl2d_sag"', "true"],
        ["SliceThickness", "range 1..5", '"4"', "true"],
        ["instance_count", "range 30..", '"35"', "true"],
        ["ContrastBolusAgent", 'not (regex ".*")', "<absent>", "true"],
        ["calling_ae", 'one of ["MR_SCANNER"]', '"MR_SCANNER"', "true"],
    ]
    assert lines[15:] == [
        "",
        "route everything: MATCH (pipeline ct_basic, results kept here only)",
        "  (no conditions: every series matches)",
        "",
        "2 of 3 routes match: brain-mr, everything",
    ]


def test_explain_aligns_the_columns_of_all_routes(tmp_path: Path, mr_folder: Path) -> None:
    result = explain(write_config(tmp_path), mr_folder)
    rows = [line for line in result.stdout.splitlines() if line.endswith(("true", "false"))]
    assert len(rows) == 9
    # A cell is a run of words with single spaces inside; cells are two or more spaces apart.
    starts = {tuple(cell.start() for cell in re.finditer(r"\S+(?: \S+)*", row)) for row in rows}
    assert len(starts) == 1, starts


def test_without_calling_ae_the_condition_on_it_fails(tmp_path: Path, mr_folder: Path) -> None:
    result = explain(write_config(tmp_path), mr_folder)
    assert result.returncode == 0, result.stderr
    assert "route brain-mr: no match" in result.stdout
    assert "calling_ae <absent>" in result.stdout
    assert result.stdout.endswith("1 of 3 routes match: everything\n")


def test_explain_on_a_ct_series_with_empty_uids(tmp_path: Path) -> None:
    folder = shared_data("ct", "totalseg_example_ct_dicom", "dicom")
    result = explain(write_config(tmp_path), folder, "--called-ae", "OTHER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"series <absent>: 20 instances in {folder}\n")
    assert 'called_ae "OTHER"' in result.stdout
    assert "route chest-ct: MATCH (pipeline ct_basic, send to pacs)" in result.stdout


def test_a_config_with_a_bad_regex_is_refused(tmp_path: Path, mr_folder: Path) -> None:
    config = write_config(tmp_path, CONFIG.replace('"(?i)t1.*"', '"(?i)t1.*("'))
    result = explain(config, mr_folder)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "routes.1.match.SeriesDescription.regex (line 15): invalid regular expression" in (
        result.stderr
    )


def test_a_folder_without_dicom_files_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = explain(write_config(tmp_path), empty)
    assert result.returncode == 1
    assert f"no DICOM files in {empty}" in result.stderr
