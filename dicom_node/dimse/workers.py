"""DIMSE worker processes sharing one listening socket.

One Python process runs one thread at a time; storing an instance is a few milliseconds of
Python work, so several processes accept on the same socket (pre-fork style, the kernel hands
each connection to one of them) to use several cores. The main process binds the socket and
starts the workers with its descriptor (`dicom_node.processes` supervises them); a separate
DICOM TLS port (dimse.tls.port) is a second shared socket passed the same way.
"""

from __future__ import annotations

import socket
import sys

from dicom_node.config.models import NodeConfig
from dicom_node.dimse.qr import QueryRetrieveContext
from dicom_node.dimse.scp import DimseServer
from dicom_node.index import Index
from dicom_node.processes import SupervisedProcesses, begin_child, signal_ready
from dicom_node.storage import InstanceStore

__all__ = ["WORKER_NAME", "WorkerPool", "run_worker"]

WORKER_NAME = "dimse-worker"


class WorkerPool:
    def __init__(
        self,
        config: NodeConfig,
        listener: socket.socket,
        count: int,
        tls_listener: socket.socket | None = None,
    ) -> None:
        self._listener = listener
        self._tls_listener = tls_listener
        self._grace_s = config.dimse.shutdown_grace_s
        fd = listener.fileno()
        tls_fd = tls_listener.fileno() if tls_listener is not None else -1
        self._processes = SupervisedProcesses(
            WORKER_NAME,
            "dicom_node.dimse.workers",
            config,
            count,
            args=[str(fd), str(tls_fd)],
            pass_fds=[fd] if tls_fd < 0 else [fd, tls_fd],
        )

    def start(self) -> None:
        # Each worker imports and opens the index in parallel with the others.
        self._processes.start()

    def status(self) -> tuple[int, int]:
        """(running, configured) worker processes."""
        return self._processes.status()

    def stop(self, grace_s: float) -> None:
        # Associations get `grace_s` inside the worker; allow for the worker's own shutdown.
        self._processes.stop(grace_s + 15)
        self._listener.close()
        if self._tls_listener is not None:
            self._tls_listener.close()


def run_worker(listener_fd: int, tls_listener_fd: int, parent_pid: int) -> int:
    """A worker: read the config from stdin, serve associations until SIGTERM
    (`tls_listener_fd` is -1 without a separate TLS port)."""
    config, stop = begin_child(parent_pid)
    index = Index(config.database.url, echo=config.database.echo)
    store = InstanceStore.from_config(config.storage, index)
    query_retrieve = QueryRetrieveContext.from_config(config, index, store.area)
    server = DimseServer(config.dimse, config.node.ae_title, store, query_retrieve)
    try:
        tls_listener = socket.socket(fileno=tls_listener_fd) if tls_listener_fd >= 0 else None
        server.start(socket.socket(fileno=listener_fd), tls_listener)
        signal_ready(WORKER_NAME)
        stop.wait()
    finally:
        server.stop(config.dimse.shutdown_grace_s)
        store.close()
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
