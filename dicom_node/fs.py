"""File-system primitives shared by storage and index: directory fsync, and locks that hold
across threads and across the node's DIMSE worker processes (flock)."""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

__all__ = ["FileLock", "StripedLocks", "fsync_directory"]


def fsync_directory(path: Path) -> None:
    """Make a folder's entries (new, renamed or removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileLock:
    """An exclusive lock on a file: a thread lock in-process, flock(2) between processes
    (the kernel wakes the next waiter at once; no polling)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        self._thread_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class StripedLocks:
    """`stripes` file locks in `folder`; a key always maps to the same one."""

    def __init__(self, folder: Path, stripes: int = 64) -> None:
        self._locks = [FileLock(folder / f"{number:02d}.lock") for number in range(stripes)]

    def held(self, key: str) -> AbstractContextManager[None]:
        # A stable hash (not hash()): every process must map a key to the same stripe.
        return self._locks[zlib.crc32(key.encode("utf-8")) % len(self._locks)].held()

    def close(self) -> None:
        for lock in self._locks:
            lock.close()
