"""OHIF 3.13 served by the node (http.viewer) shows a CT series from the node's own DICOMweb, in
headless Chromium: the study is in the study list, no data source error, image pixels in the
viewport. The screenshots are kept (DICOM_NODE_ARTIFACTS, else the test's tmp_path).

`make test-deps` fetches the OHIF build and playwright-core (scripts/fetch-viewer.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import send_raw, storescu
from tests.support.peers import PROJECT_ROOT, missing, require_command, shared_data
from tests.support.phantom import write_ct_series

OHIF_VERSION = "3.13.2"
OHIF_DIST = PROJECT_ROOT / ".cache" / "ohif" / OHIF_VERSION / "dist"
BROWSER_TESTS = PROJECT_ROOT / "tests" / "browser"
DRIVER = BROWSER_TESTS / "ohif.mjs"
REAL_CT = ("ct", "totalseg_example_ct_dicom", "dicom")
REAL_CT_SERIES_DESCRIPTION = "Body 3.0"
REAL_CT_STUDY_DATE = "08-Dec-2022"  # as OHIF formats its StudyDate
CHROMIUM = Path("/usr/bin/chromium")
PATIENT_FAMILY_NAME = "OHIFCHECK"
STUDY_DESCRIPTION = "dicom-node viewer check"
# Chromium start, OHIF boot, QIDO, metadata and the first frames, on a 2-core machine.
DEADLINE_S = 120


def require_browser() -> tuple[str, Path]:
    node = require_command("node")
    if not (OHIF_DIST / "index.html").is_file():
        missing(f"the OHIF {OHIF_VERSION} build in {OHIF_DIST} (scripts/fetch-viewer.sh)")
    if not (BROWSER_TESTS / "node_modules" / "playwright-core").is_dir():
        missing("playwright-core in tests/browser/node_modules (scripts/fetch-viewer.sh)")
    if not CHROMIUM.is_file():
        missing(f"chromium at {CHROMIUM} (Debian package chromium)")
    return node, CHROMIUM


def artifacts_dir(tmp_path: Path, name: str) -> Path:
    root = os.environ.get("DICOM_NODE_ARTIFACTS")
    folder = Path(root) / name if root else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def phantom_study(folder: Path) -> tuple[str, list[Path]]:
    """A small phantom CT series with a patient name and study description to look for."""
    files = write_ct_series(folder, 12, size=256, patient_name=f"{PATIENT_FAMILY_NAME}^CT")
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.StudyDescription = STUDY_DESCRIPTION
        dataset.save_as(path, enforce_file_format=True)
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), files


def run_driver(
    base_url: str,
    study_uid: str,
    artifacts: Path,
    *,
    study_list_text: list[str],
    viewer_text: list[str],
) -> dict[str, Any]:
    node_executable, chromium = require_browser()
    options = {
        "baseUrl": base_url,
        "studyInstanceUid": study_uid,
        "studyListText": study_list_text,
        "viewerText": viewer_text,
        "artifacts": str(artifacts),
        "deadlineMs": DEADLINE_S * 1000,
        "chromium": str(chromium),
    }
    completed = subprocess.run(
        [node_executable, str(DRIVER), json.dumps(options)],
        cwd=BROWSER_TESTS,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S + 60,
        check=False,
    )
    assert completed.returncode == 0, f"driver failed:\n{completed.stdout}\n{completed.stderr}"
    report: dict[str, Any] = json.loads(completed.stdout)
    print(f"OHIF screenshots and report in {artifacts}")
    print(describe(report))
    return report


def describe(report: dict[str, Any]) -> str:
    """What OHIF asked the node and what it answered: the log to read when a check fails."""
    lines = ["requests (method status url):"]
    for entry in report["network"]:
        status = entry["status"] if entry["status"] is not None else entry.get("failure")
        lines.append(f"  {entry['method']} {status} {entry['url']}")
    lines.append("console errors and warnings:")
    lines.extend(f"  {line}" for line in report["console"][-40:])
    lines.append(f"driver error: {report['error']}")
    lines.append(f"study list: {report['studyList']}")
    lines.append(f"viewer: {report['viewer']}")
    return "\n".join(lines)


def check_shown(report: dict[str, Any]) -> None:
    """The study listed, no data source error, the texts and image pixels in the viewer."""
    study_list, viewer = report["studyList"], report["viewer"]
    assert report["error"] is None, describe(report)
    assert study_list["missing"] == [], describe(report)
    assert not study_list["connectionError"], describe(report)
    assert not viewer["connectionError"], describe(report)
    assert viewer["missing"] == [], describe(report)
    # Body or phantom fills a good part of the image (about a third of it is bright): the rendered
    # canvas, and the screenshot of it, where overlay text alone is well under 5 %.
    assert viewer["canvasBright"] > 0.05 * viewer["canvasPixels"] > 0, describe(report)
    assert viewer["screenshotBright"] > 0.05 * viewer["screenshotPixels"] > 0, describe(report)


def test_ohif_shows_a_phantom_ct_from_the_node(start_node: NodeFactory, tmp_path: Path) -> None:
    require_browser()
    node = start_node({"http": {"viewer": {"path": str(OHIF_DIST)}}})
    study_uid, files = phantom_study(tmp_path / "phantom")
    assert storescu(node.dimse_port, files).returncode == 0

    report = run_driver(
        node.http_url,
        study_uid,
        artifacts_dir(tmp_path, "ohif-phantom"),
        study_list_text=[PATIENT_FAMILY_NAME, STUDY_DESCRIPTION],
        viewer_text=[STUDY_DESCRIPTION],
    )

    check_shown(report)


def test_ohif_shows_a_real_jpeg2000_ct_from_the_node(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    """Real CT slices stored JPEG 2000 as received: OHIF decodes the frames itself."""
    require_browser()
    node = start_node({"http": {"viewer": {"path": str(OHIF_DIST)}}})
    files = sorted(shared_data(*REAL_CT).glob("*.dcm"))
    # Its SOP/Series/Study UIDs are empty: dcmtk refuses to send it, the node repairs them.
    assert all(status == 0xB000 for status, _ in send_raw(node.dimse_port, files))
    studies = httpx.get(f"{node.http_url}/api/studies", timeout=10).json()["studies"]
    assert len(studies) == 1

    report = run_driver(
        node.http_url,
        studies[0]["study_instance_uid"],
        artifacts_dir(tmp_path, "ohif-real-ct"),
        study_list_text=[REAL_CT_STUDY_DATE],
        viewer_text=[REAL_CT_SERIES_DESCRIPTION],
    )

    check_shown(report)
