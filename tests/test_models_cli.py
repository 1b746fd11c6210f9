"""`dicom-node models ...`, `config check` and /api/health about models, and a job whose model
is missing failing at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
import yaml

from dicom_node.cli import main
from dicom_node.phantom import write_phantom_series
from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.model_sources import write_nnunet_results
from tests.support.results import jobs

ABDOMEN_ROUTE = {"name": "abdomen", "match": {"Modality": "CT"}, "pipeline": "ct_abdomen"}
# One process of each kind: a node routing a model pipeline starts a little slower.
ONE_WORKER_EACH = {"dimse": {"workers": 1}, "http": {"workers": 1}}
MISSING = (
    "model 'abdomenatlas' is not installed: dicom-node models install SOURCE --name abdomenatlas"
)


def write_config(folder: Path, **fields: Any) -> Path:
    """A config in `folder/config/` whose relative models_dir is `../models`."""
    path = folder / "config" / "node.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"models_dir": "../models", **fields}), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A config with the model `lungs` installed through the CLI."""
    config = write_config(tmp_path)
    results = write_nnunet_results(tmp_path / "Dataset901_Lungs")
    assert run(capsys, "models", "install", results, "--name", "lungs", "--config", config)[0] == 0
    return config


def test_install_resolves_models_dir_beside_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    results = write_nnunet_results(tmp_path / "Dataset901_Lungs")
    code, out, _ = run(capsys, "models", "install", results, "--name", "lungs", "--config", config)
    assert (code, out) == (
        0,
        f"installed lungs (version 1, nnunet_v2, 2 labels) in {tmp_path / 'models' / 'lungs'}\n",
    )


def test_list_prints_a_table_with_status(
    installed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models" / "half_copied").mkdir()
    code, out, _ = run(capsys, "models", "list", "--config", installed)
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["name", "version", "format", "labels", "modality", "status"],
        ["lungs", "1", "nnunet_v2", "2", "CT", "ok"],
        ["half_copied", "-", "-", "-", "-", "PROBLEM"],
        ["PROBLEM", "half_copied:", "no", "manifest.yaml"],
    ]


def test_verify_of_an_intact_model_exits_0(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "models", "verify", "lungs", "--config", installed) == (0, "lungs: ok\n", "")


def test_verify_exits_1_naming_a_changed_file(
    installed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models" / "lungs" / "weights" / "dataset.json").write_text("{}", encoding="utf-8")
    code, out, _ = run(capsys, "models", "verify", "lungs", "--config", installed)
    assert code == 1
    assert out.startswith("lungs: sha256 mismatch: weights/dataset.json (manifest ")


def test_remove_then_verify_says_not_installed(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "models", "remove", "lungs", "--config", installed)[:2] == (
        0,
        "removed lungs\n",
    )
    assert run(capsys, "models", "verify", "lungs", "--config", installed) == (
        2,
        "",
        "error: model 'lungs' is not installed: dicom-node models install SOURCE --name lungs\n",
    )


def test_source_that_is_no_model_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model", encoding="utf-8")
    code, _, err = run(capsys, "models", "install", notes, "--name", "n", "--config", config)
    assert (code, err.count("\n")) == (2, 1)
    assert err.startswith(f"error: {notes} is not a model file this node knows")


def test_missing_spec_fields_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07")
    code, _, err = run(capsys, "models", "install", onnx, "--name", "m", "--config", config)
    assert (code, err) == (2, "error: an ONNX model needs --spec FILE.yaml with: labels, input\n")


def test_config_check_warns_about_a_missing_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, routes=[ABDOMEN_ROUTE])
    assert run(capsys, "config", "check", config) == (
        0,
        f"{config}: valid\n",
        "warning: route abdomen: pipeline ct_abdomen needs model 'abdomenatlas', which is not"
        " installed (dicom-node models install SOURCE --name abdomenatlas)\n",
    )


def test_config_check_is_quiet_once_the_model_is_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, routes=[ABDOMEN_ROUTE])
    results = write_nnunet_results(tmp_path / "Dataset901_Lungs")
    run(capsys, "models", "install", results, "--name", "abdomenatlas", "--config", config)
    assert run(capsys, "config", "check", config) == (0, f"{config}: valid\n", "")


def test_config_check_refuses_an_unknown_inference_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, inference={"device": "gpu0"})
    code, _, err = run(capsys, "config", "check", config)
    assert code == 2
    assert "inference.device (line 2): device 'gpu0' must be auto, cpu, cuda or cuda:N" in err


def health(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/health", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_lists_a_missing_model_as_degraded(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node(
        {"routes": [ABDOMEN_ROUTE], "models_dir": str(tmp_path / "models"), **ONE_WORKER_EACH}
    )
    body = health(node.http_url)
    assert (body["status"], body["models"]) == (
        "degraded",
        {"installed": [], "missing": [{"name": "abdomenatlas", "pipelines": ["ct_abdomen"]}]},
    )


def test_job_of_a_missing_model_fails_at_once(start_node: NodeFactory, tmp_path: Path) -> None:
    node = start_node(
        {
            "routes": [ABDOMEN_ROUTE],
            "models_dir": str(tmp_path / "models"),
            **ONE_WORKER_EACH,
            "series": {"stable_after_s": 600},
        }
    )
    files = write_phantom_series(tmp_path / "series", shape=(8, 32, 32), seed=2)
    assert storescu(node.dimse_port, files).returncode == 0
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    assert httpx.post(f"{node.http_url}/api/series/{uid}/ready", timeout=30).status_code == 200
    deadline = time.monotonic() + 60
    while (found := jobs(node, uid)) and found[0]["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {found[0]['state']}:\n{node.log()[-2000:]}"
        time.sleep(0.2)
    (job,) = found
    assert (job["state"], job["error"], job["attempts"]) == ("failed", MISSING, 1)
