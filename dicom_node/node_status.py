"""The main process's view of its worker processes, published to the HTTP workers.

Which workers run is known only to the main process (it supervises them), but `/api/health`
is answered by the HTTP worker processes. The main process publishes the (running,
configured) counts twice a second into a small shared memory block (a Linux memfd, passed
to each HTTP worker as a descriptor like the listening socket); workers read it. Nothing is
written to disk, so a full disk cannot make the node look dead.

One writer, many readers, no lock across processes: a sequence lock. The writer makes the
sequence odd, writes the counts, makes it even; a reader retries while it is odd or changed
under it. A status older than `STALE_AFTER_S` (a stuck or dead main process) reads as None.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "STALE_AFTER_S",
    "NodeStatus",
    "StatusPublisher",
    "StatusReader",
    "WorkerCount",
]

logger = logging.getLogger(__name__)

STALE_AFTER_S: Final = 5.0
PUBLISH_INTERVAL_S: Final = 0.5

_SEQUENCE: Final = struct.Struct("<Q")
# Published at (CLOCK_MONOTONIC, shared by all processes of the machine), then (running,
# configured) for DIMSE workers, job workers and HTTP workers.
_BODY: Final = struct.Struct("<d6q")
_SIZE: Final = _SEQUENCE.size + _BODY.size


@dataclass(frozen=True)
class WorkerCount:
    running: int
    configured: int

    @property
    def complete(self) -> bool:
        return self.running == self.configured


@dataclass(frozen=True)
class NodeStatus:
    dimse_workers: WorkerCount
    job_workers: WorkerCount
    http_workers: WorkerCount


class StatusPublisher:
    """Main process: from `start`, a thread writes `collect()` every `PUBLISH_INTERVAL_S`."""

    def __init__(self) -> None:
        self._collect: Callable[[], NodeStatus] | None = None
        self._fd = os.memfd_create("dicom-node-status")
        os.ftruncate(self._fd, _SIZE)
        self._map = mmap.mmap(self._fd, _SIZE)
        self._sequence = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-publisher", daemon=True)

    def fileno(self) -> int:
        """The descriptor to pass to a reader process."""
        return self._fd

    def start(self, collect: Callable[[], NodeStatus]) -> None:
        self._collect = collect
        self._publish()
        self._thread.start()

    def _publish(self) -> None:
        assert self._collect is not None
        status = self._collect()
        body = _BODY.pack(
            time.monotonic(),
            *(
                value
                for count in (status.dimse_workers, status.job_workers, status.http_workers)
                for value in (count.running, count.configured)
            ),
        )
        self._sequence += 1  # odd: being written
        _SEQUENCE.pack_into(self._map, 0, self._sequence)
        self._map[_SEQUENCE.size : _SIZE] = body
        self._sequence += 1
        _SEQUENCE.pack_into(self._map, 0, self._sequence)

    def _run(self) -> None:
        while not self._stopping.wait(PUBLISH_INTERVAL_S):
            try:
                self._publish()
            except Exception:
                logger.exception("publishing the node status failed")

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._map.close()
        os.close(self._fd)


class StatusReader:
    """HTTP worker: reads what the main process published on descriptor `fd`."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, _SIZE, prot=mmap.PROT_READ)
        os.close(fd)  # the mapping keeps the memory

    def read(self) -> NodeStatus | None:
        """The latest status; None if none was published or it is older than STALE_AFTER_S."""
        for _ in range(1000):
            (before,) = _SEQUENCE.unpack_from(self._map, 0)
            if before % 2 == 0:
                values = _BODY.unpack_from(self._map, _SEQUENCE.size)
                (after,) = _SEQUENCE.unpack_from(self._map, 0)
                if after == before:
                    break
            time.sleep(0)
        else:
            return None
        if before == 0:
            return None
        published_at, *counts = values
        if time.monotonic() - published_at > STALE_AFTER_S:
            return None
        dimse, jobs, http = (WorkerCount(*counts[i : i + 2]) for i in (0, 2, 4))
        return NodeStatus(dimse_workers=dimse, job_workers=jobs, http_workers=http)

    def close(self) -> None:
        self._map.close()
