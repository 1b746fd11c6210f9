"""DICOM helpers for tests: dataset bytes of Part 10 files, dcmtk runs, a raw pynetdicom SCU."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

from tests.support.peers import require_command
from tests.support.storage_check import dataset_bytes

__all__ = ["ReferenceStoreSCP", "dataset_bytes", "dcmtk", "send_raw", "storescu"]


def dcmtk(tool: str, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    executable = require_command(tool)
    return subprocess.run(
        [executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, TCP_NODELAY="1"),
        check=False,
    )


def storescu(port: int, files: Iterable[Path], *flags: str) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", "-v", *flags, "127.0.0.1", str(port), *files)


def send_raw(
    port: int, files: Sequence[Path], *, calling_ae_title: str = "RAWSCU"
) -> list[tuple[int, str]]:
    """C-STORE Part 10 files without decoding them (pynetdicom's chunked send), taking the SOP
    Class/Instance and transfer syntax from the file meta: the way to send datasets that dcmtk
    refuses to send (empty UIDs, truncated or corrupt data). Returns (status, ErrorComment)."""
    from pydicom.filereader import read_file_meta_info

    contexts = {}
    for path in files:
        meta = read_file_meta_info(path)
        key = (meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        contexts[key] = build_context(*key)
    ae = AE(ae_title=calling_ae_title)
    ae.requested_contexts = list(contexts.values())
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        association = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
        assert association.is_established, "association not established"
        results = []
        try:
            for path in files:
                response = association.send_c_store(path)
                assert "Status" in response, f"no response for {path}"
                results.append((int(response.Status), str(response.get("ErrorComment", ""))))
        finally:
            association.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
    return results


class ReferenceStoreSCP:
    """dcmtk storescp in bit-preserving mode: it keeps each dataset exactly as it came off the
    wire, so its files are the reference for "byte-identical to what was sent"."""

    def __init__(self, folder: Path) -> None:
        from tests.support.peers import free_port

        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [require_command("storescp"), "+B", "+xa", "-od", str(folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, TCP_NODELAY="1"),
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if dcmtk("echoscu", "127.0.0.1", str(self.port), timeout=10).returncode == 0:
                return
            if self._process.poll() is not None:
                break
        self.stop()
        raise AssertionError("storescp did not start")

    def by_sop_instance_uid(self) -> dict[str, Path]:
        import pydicom

        return {
            str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): path
            for path in self.folder.iterdir()
            if path.is_file()
        }

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
