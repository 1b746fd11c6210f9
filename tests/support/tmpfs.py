"""A real, tiny file system for disk-full tests: a tmpfs mounted for one test (needs root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.peers import missing, require_command


@contextmanager
def mounted_tmpfs(mount_point: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a `size_bytes` tmpfs at `mount_point`; unmount on exit (stop users first)."""
    if os.geteuid() != 0:
        missing("tmpfs mount (root)")
    mount_point.mkdir(parents=True, exist_ok=True)
    options = f"size={size_bytes},mode=0700"
    mounted = subprocess.run(
        [require_command("mount"), "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        missing(f"tmpfs mount (root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        umount = require_command("umount")
        if subprocess.run([umount, str(mount_point)], check=False).returncode != 0:
            subprocess.run([umount, "-l", str(mount_point)], check=False)
            pytest.fail(f"{mount_point} was busy at teardown (node still running?)")
