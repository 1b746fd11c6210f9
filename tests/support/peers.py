"""Finding the real peers (dcmtk, Orthanc, PostgreSQL ...) and the shared test data.

Outside CI a missing peer skips the test that needs it; with CI=true it fails the test.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Skip, or fail under CI, because `what` is not available."""
    message = f"{what} is not available (make test installs the Debian peers)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_command(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        missing(f"command {name!r}")
    assert path is not None
    return path


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        missing(f"shared test data {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
