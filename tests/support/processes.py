"""The node's worker processes as the OS shows them, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.support.node import NodeProcess

__all__ = ["wait_until", "worker_pids"]


def worker_pids(node: NodeProcess, module: str = "dicom_node.dimse.workers") -> list[int]:
    """Child processes of the node running `module` (DIMSE, HTTP or job workers)."""
    assert node.process is not None
    # Each thread's children are listed under its own task (the supervisor thread restarts).
    tasks = Path(f"/proc/{node.process.pid}/task").glob("*/children")
    pids = sorted(int(pid) for task in tasks for pid in task.read_text().split())
    found = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if module.encode() in command:
            found.append(pid)
    return found


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
