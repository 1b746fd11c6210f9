"""Running `dicom-node serve` as a real process for tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

READY = re.compile(
    r"^ready dimse=(?P<dimse_host>[^ ]+):(?P<dimse>\d+) http=(?P<http_host>[^ ]+):(?P<http>\d+)"
    r"(?P<extra>( [a-z_]+=[^ ]+)*)$"
)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def base_config(workdir: Path) -> dict[str, Any]:
    return {
        "node": {"ae_title": "DICOM_NODE"},
        "dimse": {"host": "127.0.0.1", "port": 0, "shutdown_grace_s": 5},
        "http": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(workdir / "storage"), "min_free_bytes": 0},
        "database": {"url": f"sqlite:///{workdir / 'index.sqlite'}"},
        "series": {"stable_after_s": 30},
    }


@dataclass
class NodeProcess:
    workdir: Path
    config: dict[str, Any]
    process: subprocess.Popen[str] | None = None
    dimse_port: int = 0
    http_port: int = 0
    # The separate DICOM TLS port (dimse.tls.port), from the ready line's dimse_tls token.
    dimse_tls_port: int = 0
    stdout_lines: list[str] = field(default_factory=list)
    stderr_path: Path | None = None
    _reader: threading.Thread | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "node.yaml"

    @property
    def storage(self) -> Path:
        return Path(self.config["storage"]["path"])

    @property
    def http_url(self) -> str:
        scheme = "https" if self.config.get("http", {}).get("tls") else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> NodeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        self.stderr_path = self.workdir / f"node-{int(time.time() * 1000)}.log"
        stderr = self.stderr_path.open("w", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dicom_node", "serve", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
        stderr.close()
        ready = threading.Event()
        stdout = self.process.stdout
        assert stdout is not None

        def read_stdout() -> None:
            for line in stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                match = READY.match(line.strip())
                if match:
                    self.dimse_port = int(match["dimse"])
                    self.http_port = int(match["http"])
                    tls = re.search(r" dimse_tls=[^ ]+:(\d+)", match["extra"])
                    self.dimse_tls_port = int(tls[1]) if tls else 0
                    ready.set()

        self._reader = threading.Thread(target=read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"node did not become ready:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8") if self.stderr_path else ""

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        self._close_pipes()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
