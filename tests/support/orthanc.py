"""A real Orthanc (Debian package) for tests: own config, free ports, stopped afterwards."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.peers import free_port, require_command

ORTHANC_AE = "ORTHANC"


def _request(url: str, credentials: tuple[str, str] | None) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def _get(url: str, timeout_s: float = 10, credentials: tuple[str, str] | None = None) -> Any:
    with urllib.request.urlopen(_request(url, credentials), timeout=timeout_s) as response:
        return json.loads(response.read())


@dataclass
class OrthancProcess:
    workdir: Path
    modalities: dict[str, list[Any]] = field(default_factory=dict)
    # Further Orthanc settings, over the defaults below.
    settings: dict[str, Any] = field(default_factory=dict)
    # (user, password) for Orthanc's own REST calls when settings enable authentication.
    credentials: tuple[str, str] | None = None
    dicom_port: int = 0
    http_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 60) -> OrthancProcess:
        executable = require_command("Orthanc")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.dicom_port:
            self.dicom_port = free_port()
        if not self.http_port:
            self.http_port = free_port()
        config = {
            "Name": "test",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomServerEnabled": True,
            "DicomAet": ORTHANC_AE,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": self.modalities,
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "Plugins": [],
            "UnknownSopClassAccepted": False,
            **self.settings,
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        log = (self.workdir / "orthanc.log").open("ab")
        self.process = subprocess.Popen(
            [executable, str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, TCP_NODELAY="1"),
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _get(f"{self.url}/system", timeout_s=2, credentials=self.credentials)
                return self
            except OSError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"Orthanc did not start: {exc}\n{self.log()}") from exc
                time.sleep(0.1)

    def log(self) -> str:
        path = self.workdir / "orthanc.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def get(self, path: str) -> Any:
        return _get(f"{self.url}{path}", credentials=self.credentials)

    def instances_by_modality(self) -> dict[str, list[str]]:
        """Orthanc instance ids grouped by the Modality of their series."""
        found: dict[str, list[str]] = {}
        for series_id in self.get("/series"):
            series = self.get(f"/series/{series_id}")
            modality = series["MainDicomTags"].get("Modality", "")
            found.setdefault(modality, []).extend(series["Instances"])
        return found

    def file(self, instance_id: str) -> bytes:
        request = _request(f"{self.url}/instances/{instance_id}/file", self.credentials)
        with urllib.request.urlopen(request, timeout=30) as r:
            data: bytes = r.read()
            return data

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
