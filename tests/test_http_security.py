"""HTTP security of a running node: Basic and Bearer authentication, CORS, HTTPS, and the
refusal of a config whose secret environment variable is missing."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.node import NodeProcess, base_config, deep_merge
from tests.support.tls import Pki, make_pki

ALLOWED_ORIGIN = "https://viewer.example.org"
ALICE_PASSWORD = "wonder land:1"
BOB_PASSWORD = "bob-from-the-environment"
READER_TOKEN = "reader-token-0123456789"
ROBOT_TOKEN = "robot-token-from-the-environment"


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def started(folder: Path, overrides: dict[str, Any], env: dict[str, str]) -> Iterator[NodeProcess]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        node = NodeProcess(folder, deep_merge(base_config(folder), overrides)).start()
    try:
        yield node
    finally:
        node.terminate()


@pytest.fixture(scope="module")
def basic_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    auth = {
        "kind": "basic",
        "realm": "test node",
        "users": [
            {"username": "alice", "sha256": sha256(ALICE_PASSWORD)},
            {"username": "bob", "env": "TEST_NODE_BOB_PASSWORD"},
        ],
    }
    yield from started(
        tmp_path_factory.mktemp("basic"),
        {"dimse": {"workers": 1}, "http": {"auth": auth, "cors_origins": [ALLOWED_ORIGIN]}},
        {"TEST_NODE_BOB_PASSWORD": BOB_PASSWORD},
    )


@pytest.fixture(scope="module")
def bearer_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    auth = {
        "kind": "bearer",
        "tokens": [
            {"name": "reader", "sha256": sha256(READER_TOKEN)},
            {"name": "robot", "env": "TEST_NODE_ROBOT_TOKEN"},
        ],
    }
    yield from started(
        tmp_path_factory.mktemp("bearer"),
        {"dimse": {"workers": 1}, "http": {"auth": auth}},
        {"TEST_NODE_ROBOT_TOKEN": ROBOT_TOKEN},
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def https_node(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[NodeProcess]:
    tls = {"certificate": str(pki.server_certificate), "key": str(pki.server_key)}
    yield from started(
        tmp_path_factory.mktemp("https"), {"dimse": {"workers": 1}, "http": {"tls": tls}}, {}
    )


def assert_unauthorized(response: httpx.Response, challenge: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert response.headers["www-authenticate"].startswith(challenge)


# Basic


def test_basic_without_credentials_is_401_problem_with_challenge(basic_node: NodeProcess) -> None:
    response = httpx.get(f"{basic_node.http_url}/api/studies", timeout=10)
    assert_unauthorized(response, 'Basic realm="test node"')


def test_basic_wrong_password_is_401(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/api/studies", auth=("alice", "not-her-password"), timeout=10
    )
    assert_unauthorized(response, "Basic")


def test_basic_unknown_user_is_401(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/api/studies", auth=("mallory", ALICE_PASSWORD), timeout=10
    )
    assert_unauthorized(response, "Basic")


def test_basic_right_password_reaches_api(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/api/studies", auth=("alice", ALICE_PASSWORD), timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


def test_basic_password_from_environment_reaches_api(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/api/studies", auth=("bob", BOB_PASSWORD), timeout=10
    )
    assert response.status_code == 200, response.text


def test_basic_protects_dicomweb(basic_node: NodeProcess) -> None:
    response = httpx.get(f"{basic_node.http_url}/dicomweb/studies", timeout=10)
    assert_unauthorized(response, "Basic")


def test_basic_right_password_reaches_dicomweb(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/dicomweb/studies", auth=("alice", ALICE_PASSWORD), timeout=10
    )
    assert response.status_code in (200, 204), response.text


def test_health_is_open_without_credentials(basic_node: NodeProcess) -> None:
    response = httpx.get(f"{basic_node.http_url}/api/health", timeout=10)
    assert response.status_code == 200, response.text


def test_failed_authentication_is_logged_without_the_secret(basic_node: NodeProcess) -> None:
    httpx.get(f"{basic_node.http_url}/api/jobs", auth=("alice", "guessed-secret-123"), timeout=10)
    log = basic_node.log()
    assert "HTTP authentication failed: GET /api/jobs" in log
    assert "guessed-secret-123" not in log


# CORS


def preflight(node: NodeProcess, origin: str) -> httpx.Response:
    return httpx.options(
        f"{node.http_url}/dicomweb/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
        timeout=10,
    )


def test_cors_preflight_from_allowed_origin_needs_no_credentials(
    basic_node: NodeProcess,
) -> None:
    response = preflight(basic_node, ALLOWED_ORIGIN)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_cors_preflight_from_other_origin_gets_no_allow_header(basic_node: NodeProcess) -> None:
    response = preflight(basic_node, "https://elsewhere.example.com")
    assert "access-control-allow-origin" not in response.headers


def test_cors_401_is_readable_by_the_allowed_origin(basic_node: NodeProcess) -> None:
    response = httpx.get(
        f"{basic_node.http_url}/dicomweb/studies", headers={"Origin": ALLOWED_ORIGIN}, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "www-authenticate" in exposed


# Bearer


def test_bearer_without_token_is_401_with_challenge(bearer_node: NodeProcess) -> None:
    response = httpx.get(f"{bearer_node.http_url}/api/studies", timeout=10)
    assert_unauthorized(response, 'Bearer realm="dicom-node"')


def test_bearer_wrong_token_is_401_invalid_token(bearer_node: NodeProcess) -> None:
    response = httpx.get(
        f"{bearer_node.http_url}/dicomweb/studies",
        headers={"Authorization": "Bearer not-a-token"},
        timeout=10,
    )
    assert_unauthorized(response, "Bearer")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_bearer_basic_credentials_are_refused(bearer_node: NodeProcess) -> None:
    response = httpx.get(
        f"{bearer_node.http_url}/api/studies", auth=("reader", READER_TOKEN), timeout=10
    )
    assert_unauthorized(response, "Bearer")


def test_bearer_right_token_reaches_api(bearer_node: NodeProcess) -> None:
    response = httpx.get(
        f"{bearer_node.http_url}/api/studies",
        headers={"Authorization": f"Bearer {READER_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_bearer_token_from_environment_reaches_dicomweb(bearer_node: NodeProcess) -> None:
    response = httpx.get(
        f"{bearer_node.http_url}/dicomweb/studies",
        headers={"Authorization": f"Bearer {ROBOT_TOKEN}"},
        timeout=10,
    )
    assert response.status_code in (200, 204), response.text


# HTTPS


def test_https_with_the_test_ca_works(https_node: NodeProcess, pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    response = httpx.get(f"{https_node.http_url}/api/health", verify=context, timeout=10)
    assert https_node.http_url.startswith("https://")
    assert response.status_code == 200, response.text


def test_https_refuses_plain_http(https_node: NodeProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https_node.http_port}/api/health", timeout=10)


def test_https_certificate_is_not_trusted_without_the_ca(https_node: NodeProcess) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_node.http_url}/api/health", timeout=10)


# A missing secret


def config_with_missing_secret(tmp_path: Path) -> Path:
    config = deep_merge(
        base_config(tmp_path),
        {
            "http": {
                "auth": {
                    "kind": "basic",
                    "users": [{"username": "carol", "env": "TEST_NODE_UNSET_PASSWORD"}],
                }
            }
        },
    )
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(*args: str | Path, env_without: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != env_without}
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_config_check_names_a_missing_secret_variable(tmp_path: Path) -> None:
    path = config_with_missing_secret(tmp_path)
    result = run_cli("config", "check", path, env_without="TEST_NODE_UNSET_PASSWORD")
    assert result.returncode == 2
    assert "http.auth.users.0.env" in result.stderr
    assert "environment variable TEST_NODE_UNSET_PASSWORD" in result.stderr


def test_serve_refuses_to_start_without_the_secret(tmp_path: Path) -> None:
    path = config_with_missing_secret(tmp_path)
    result = run_cli("serve", "--config", path, env_without="TEST_NODE_UNSET_PASSWORD")
    assert result.returncode == 2
    assert "environment variable TEST_NODE_UNSET_PASSWORD" in result.stderr
    assert "ready" not in result.stdout
