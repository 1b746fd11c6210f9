"""Config validation: every problem named by its YAML path, `config check` exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicom_node.config import DimseConfig, NodeConfig, load_config
from dicom_node.config.models import PeerConfig
from dicom_node.errors import ConfigError
from dicom_node.processes import config_json
from tests.support.peers import PROJECT_ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


def config_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["dicom-node.yaml", "example.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(PROJECT_ROOT / "config" / name)
    assert config.node.ae_title


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "storage: {path: st}\ndatabase: {url: 'sqlite:///i.db'}\n")
    )
    assert config.storage.path == tmp_path / "st"
    assert config.database.url == f"sqlite:///{tmp_path / 'i.db'}"


def test_unknown_key_is_rejected_with_its_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "dimse:\n  host: 127.0.0.1\n  prot: 104\n")
    assert problems_of(path) == ["dimse.prot (line 3): Extra inputs are not permitted"]


def test_port_must_be_an_integer(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "http:\n  port: '8080'\n"))
    assert problem.startswith("http.port (line 2): Input should be a valid integer")


def test_port_out_of_range_is_rejected(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "dimse:\n  port: 70000\n"))
    assert "dimse.port (line 2)" in problem
    assert "between 0 and 65535" in problem


def test_port_zero_means_free_port(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "dimse: {port: 0}\n")).dimse.port == 0


@pytest.mark.parametrize(
    ("title", "reason"),
    [
        ("A" * 17, "at most 16 characters"),
        ("BAD\\AE", "backslash"),
        ("BAD\tAE", "control characters"),
        ("   ", "empty or blank"),
        ("ÄRZTE", "ASCII"),
    ],
)
def test_invalid_ae_titles_are_rejected(tmp_path: Path, title: str, reason: str) -> None:
    path = write(tmp_path, f"node:\n  ae_title: {title!r}\n".replace("'", '"'))
    (problem,) = problems_of(path)
    assert problem.startswith("node.ae_title (line 2)")
    assert reason in problem


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "node: {ae_title: WAY_TOO_LONG_AE_TITLE}\n"
        "dimse: {port: -1, allowed_peers: [{ae_title: OK, hosts: [not-an-ip]}]}\n"
        "storage: {on_duplicate: overwrite}\n"
        "destinations:\n  pacs: {kind: dimse, ae_title: PACS, host: h, port: 104, extra: 1}\n"
        "routes:\n  - {name: r, pipeline: ct_basic, send_to: [nowhere]}\n"
    )
    paths = [problem.split(" ")[0].rstrip(":") for problem in problems_of(write(tmp_path, text))]
    assert paths == [
        "node.ae_title",
        "dimse.port",
        "dimse.allowed_peers.0.hosts.0",
        "storage.on_duplicate",
        "destinations.pacs.extra",
    ]


def test_route_to_unknown_destination_names_the_route(tmp_path: Path) -> None:
    text = "routes:\n  - {name: r, pipeline: ct_basic, send_to: [nowhere]}\n"
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.startswith("routes.0.send_to (line 2): unknown destination 'nowhere'")


def test_yaml_syntax_error_is_reported_with_line(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "dimse:\n  port: [1\n"))
    assert "not valid YAML" in problem


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "- a\n- b\n"))
    assert "must be a mapping" in problem


def test_config_check_exits_0_on_a_valid_file(tmp_path: Path) -> None:
    result = config_check(write(tmp_path, "node: {ae_title: NODE}\n"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_config_check_exits_2_and_prints_every_error(tmp_path: Path) -> None:
    result = config_check(write(tmp_path, "dimse: {port: x, host: 1}\nbogus: 1\n"))
    assert result.returncode == 2
    assert "dimse.port (line 1)" in result.stderr
    assert "bogus (line 2): Extra inputs are not permitted" in result.stderr
    assert "dimse.host (line 1)" in result.stderr


def test_config_check_reports_a_missing_file(tmp_path: Path) -> None:
    result = config_check(tmp_path / "absent.yaml")
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_serve_refuses_to_start_on_an_invalid_config(tmp_path: Path) -> None:
    path = write(tmp_path, "dimse: {port: nope}\n")
    result = subprocess.run(
        [sys.executable, "-m", "dicom_node", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "dimse.port" in result.stderr


def test_peer_admits_only_its_hosts() -> None:
    peer = PeerConfig.model_validate({"ae_title": "CT1", "hosts": ["10.0.0.0/24", "::1"]})
    assert peer.admits("CT1", "10.0.0.7")
    assert peer.admits("CT1 ", "::1")
    assert not peer.admits("CT1", "10.0.1.7")
    assert not peer.admits("CT2", "10.0.0.7")


def test_models_are_frozen() -> None:
    config = NodeConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.dimse.port = 1  # type: ignore[misc]
    assert isinstance(config.dimse, DimseConfig)


def test_config_handed_to_worker_processes_validates_back_to_itself() -> None:
    config = load_config(PROJECT_ROOT / "config" / "example.yaml")
    assert config.routes  # the example exercises every route operator
    assert NodeConfig.model_validate_json(config_json(config)) == config
