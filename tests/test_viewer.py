"""The node serves a static OHIF build at the web root (http.viewer): files, SPA fallback,
the generated /app-config.js, and its own routes first.

A small stand-in build is written per test (what the node serves is files; the real OHIF build is
driven in a browser by tests/test_ohif.py).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.node import NodeProcess, base_config, deep_merge

INDEX_HTML = "<!doctype html><html><body><div id='root'></div>stand-in OHIF</body></html>"
HASHED_BUNDLE = "app.bundle.0f6159c501addfe9.js"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def write_build(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX_HTML, encoding="utf-8")
    (root / "app-config.js").write_text("window.config = {shipped: true};", encoding="utf-8")
    (root / HASHED_BUNDLE).write_text("console.log('app');", encoding="utf-8")
    (root / "init-service-worker.js").write_text("// sw", encoding="utf-8")
    (root / "34b1e6b1deb5828e.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "a34f9d1faa5f3315.woff2").write_bytes(b"wOF2")
    (root / "manifest.json").write_text("{}", encoding="utf-8")
    (root / "assets" / "favicon.ico").write_bytes(b"\0\0\1\0")
    return root


@pytest.fixture(scope="module")
def viewer_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the module: every test here only reads, and a start costs seconds."""
    workdir = tmp_path_factory.mktemp("viewer")
    build = write_build(workdir / "dist")
    config = deep_merge(base_config(workdir), {"http": {"viewer": {"path": str(build)}}})
    node = NodeProcess(workdir / "node", config).start()
    yield node
    node.terminate()


def get(node: NodeProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{node.http_url}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def test_root_answers_index_html(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == INDEX_HTML
    assert response.headers["cache-control"] == "no-cache"


def test_deep_link_answers_index_html(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, f"/viewer?StudyInstanceUIDs={STUDY_UID}")
    assert response.status_code == 200
    assert response.text == INDEX_HTML


def test_nested_client_route_answers_index_html(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/segmentation/step/2")
    assert response.status_code == 200
    assert response.text == INDEX_HTML


def test_app_config_points_at_the_nodes_dicomweb(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/app-config.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "shipped" not in response.text
    assert response.text.count('"qidoRoot": "/dicomweb"') == 1
    assert response.text.count('"wadoRoot": "/dicomweb"') == 1
    assert '"defaultDataSourceName": "dicomweb"' in response.text
    assert '"imageRendering": "wadors"' in response.text


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/34b1e6b1deb5828e.wasm", "application/wasm"),
        (f"/{HASHED_BUNDLE}", "text/javascript; charset=utf-8"),
        ("/a34f9d1faa5f3315.woff2", "font/woff2"),
        ("/manifest.json", "application/json"),
        ("/assets/favicon.ico", "image/x-icon"),
    ],
)
def test_static_file_has_its_media_type(
    viewer_node: NodeProcess, path: str, media_type: str
) -> None:
    response = get(viewer_node, path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


def test_hashed_bundle_is_cached_immutably(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, f"/{HASHED_BUNDLE}")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_unhashed_file_is_revalidated(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/init-service-worker.js")
    assert response.headers["cache-control"] == "no-cache"


def test_matching_etag_answers_not_modified(viewer_node: NodeProcess) -> None:
    etag = get(viewer_node, "/").headers["etag"]
    response = get(viewer_node, "/", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""


def test_missing_asset_is_404_not_index_html(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/9999.bundle.deadbeefdeadbeef.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_path_outside_the_build_is_not_served(viewer_node: NodeProcess) -> None:
    (viewer_node.workdir.parent / "secret.txt").write_text("outside", encoding="utf-8")
    response = get(viewer_node, "/%2e%2e/secret.txt")
    assert response.status_code == 404
    assert "outside" not in response.text


def test_api_routes_come_before_the_viewer(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/api/health")
    assert response.status_code == 200
    assert response.json()["status"] in ("ok", "degraded")


def test_unknown_api_path_is_404_problem_not_index_html(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/api/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_dicomweb_reaches_the_dicomweb_router(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/dicomweb/studies", headers={"accept": "application/dicom+json"})
    assert response.status_code in (200, 204)  # QIDO-RS: no study stored yet
    assert "stand-in OHIF" not in response.text


def test_unknown_dicomweb_path_is_404_problem(viewer_node: NodeProcess) -> None:
    response = get(viewer_node, "/dicomweb/no-such-resource")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_viewer_is_read_only(viewer_node: NodeProcess) -> None:
    response = httpx.post(f"{viewer_node.http_url}/viewer", content=b"x", timeout=10)
    assert response.status_code == 405


def test_without_viewer_config_root_is_404(node: NodeProcess) -> None:
    response = get(node, "/")
    assert response.status_code == 404


def test_config_check_names_a_viewer_path_without_index_html(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(f"http:\n  viewer:\n    path: {tmp_path / 'no-build'}\n", encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "dicom_node", "config", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 2
    assert "http.viewer.path" in checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def basic_auth_viewer_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    workdir = tmp_path_factory.mktemp("viewer-basic")
    build = write_build(workdir / "dist")
    auth = {
        "kind": "basic",
        "users": [{"username": "reader", "sha256": hashlib.sha256(b"secret").hexdigest()}],
    }
    overrides = {"http": {"viewer": {"path": str(build)}, "auth": auth}}
    node = NodeProcess(workdir / "node", deep_merge(base_config(workdir), overrides)).start()
    yield node
    node.terminate()


def test_viewer_files_are_open_under_basic_auth(basic_auth_viewer_node: NodeProcess) -> None:
    response = get(basic_auth_viewer_node, "/viewer")
    assert response.status_code == 200
    assert response.text == INDEX_HTML


def test_dicomweb_challenges_the_viewer_under_basic_auth(
    basic_auth_viewer_node: NodeProcess,
) -> None:
    response = get(basic_auth_viewer_node, "/dicomweb/studies")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
