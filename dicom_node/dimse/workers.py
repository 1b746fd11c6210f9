"""DIMSE worker processes sharing one listening socket.

One Python process runs one thread at a time; storing an instance is a few milliseconds of
Python work, so several processes accept on the same socket (pre-fork style, the kernel hands
each connection to one of them) to use several cores. The main process binds the socket,
starts the workers with the socket's descriptor and the validated config, restarts a worker
that dies, and stops them on shutdown. A worker dies with the main process (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from dicom_node.config.models import NodeConfig
from dicom_node.dimse.scp import DimseServer
from dicom_node.index import Index
from dicom_node.storage import InstanceStore

__all__ = ["WorkerPool", "run_worker"]

logger = logging.getLogger(__name__)

READY_LINE = "dimse-worker ready"
_PR_SET_PDEATHSIG = 1


class WorkerPool:
    def __init__(self, config: NodeConfig, listener: socket.socket, count: int) -> None:
        self._config = config
        self._listener = listener
        self._count = count
        self._workers: list[subprocess.Popen[str]] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _spawn(self, timeout_s: float = 60.0) -> subprocess.Popen[str]:
        fd = self._listener.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "dicom_node.dimse.workers", str(fd), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=(fd,),
        )
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(self._config.model_dump_json())
        stdin.close()
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()))
        reader.start()
        reader.join(timeout_s)
        if not ready or ready[0].strip() != READY_LINE:
            process.kill()
            process.wait()
            raise RuntimeError("a DIMSE worker did not start (see the log above)")
        return process

    def start(self) -> None:
        self._workers = [self._spawn() for _ in range(self._count)]
        self._supervisor = threading.Thread(target=self._supervise, name="dimse-supervisor")
        self._supervisor.start()

    def status(self) -> tuple[int, int]:
        """(running, configured) worker processes."""
        return sum(worker.poll() is None for worker in self._workers), self._count

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for position, worker in enumerate(self._workers):
                code = worker.poll()
                if code is None or self._stopping.is_set():
                    continue
                logger.error("DIMSE worker %d exited with code %d; restarting it", worker.pid, code)
                try:
                    self._workers[position] = self._spawn()
                except (OSError, RuntimeError):
                    logger.exception("restarting a DIMSE worker failed")

    def stop(self, grace_s: float) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for worker in self._workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s + 15
        for worker in self._workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("DIMSE worker %d did not stop; killing it", worker.pid)
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
        self._listener.close()


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the main process dies, so a killed node leaves no worker."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        logger.warning("cannot tie the DIMSE worker's life to the main process")
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the tie was made


def run_worker(listener_fd: int, parent_pid: int) -> int:
    """A worker: read the config from stdin, serve associations until SIGTERM."""
    from dicom_node.logs import configure_logging

    _die_with_parent(parent_pid)
    config = NodeConfig.model_validate_json(sys.stdin.read())
    configure_logging(os.environ.get("DICOM_NODE_LOG_LEVEL", "INFO"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    index = Index(config.database.url, echo=config.database.echo)
    store = InstanceStore.from_config(config.storage, index)
    server = DimseServer(config.dimse, config.node.ae_title, store)
    try:
        server.start(socket.socket(fileno=listener_fd))
        sys.stdout.write(READY_LINE + "\n")
        sys.stdout.flush()
        stop.wait()
    finally:
        server.stop(config.dimse.shutdown_grace_s)
        store.close()
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1]), int(sys.argv[2])))
