"""Supervised child processes: DIMSE workers and job workers.

The main process starts each child as ``python -m MODULE ARGS...``, writes the validated config
to its stdin as JSON and waits for its ready line; a supervisor thread restarts a child that
dies; `stop` sends SIGTERM and kills what has not stopped in time. A child dies with the main
process (`die_with_parent`), so a killed node never leaves workers behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from dicom_node.config.models import NodeConfig

__all__ = [
    "SupervisedProcesses",
    "begin_child",
    "config_json",
    "die_with_parent",
    "read_config_from_stdin",
    "signal_ready",
]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class SupervisedProcesses:
    def __init__(
        self,
        name: str,
        module: str,
        config: NodeConfig,
        count: int,
        *,
        args: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._name = name
        self._module = module
        self._config = config
        self._count = count
        self._args = tuple(args)
        self._pass_fds = tuple(pass_fds)
        self._on_exit = on_exit  # called with the pid of a child that died unasked
        self._children: list[subprocess.Popen[str]] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def ready_line(self) -> str:
        return f"{self._name} ready"

    def _launch(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", self._module, *self._args, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=self._pass_fds,
        )
        assert process.stdin is not None
        process.stdin.write(config_json(self._config))
        process.stdin.close()
        return process

    def _await_ready(self, process: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
        stdout = process.stdout
        assert stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()))
        reader.start()
        reader.join(timeout_s)
        if not ready or ready[0].strip() != self.ready_line:
            process.kill()
            process.wait()
            raise RuntimeError(f"a {self._name} did not start (see the log above)")

    def _spawn(self) -> subprocess.Popen[str]:
        process = self._launch()
        self._await_ready(process)
        return process

    def launch(self) -> None:
        """Start every child without waiting (they import and open their resources in
        parallel); `wait_ready` then waits for all of them."""
        self._children = [self._launch() for _ in range(self._count)]

    def wait_ready(self) -> None:
        try:
            for child in self._children:
                self._await_ready(child)
        except RuntimeError:
            for child in self._children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name=f"{self._name}-super")
        self._supervisor.start()

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def status(self) -> tuple[int, int]:
        """(running, configured) processes."""
        return sum(child.poll() is None for child in self._children), self._count

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for position, child in enumerate(self._children):
                code = child.poll()
                if code is None or self._stopping.is_set():
                    continue
                logger.error(
                    "%s %d exited with code %d; restarting it", self._name, child.pid, code
                )
                if self._on_exit is not None:
                    try:
                        self._on_exit(child.pid)
                    except Exception:
                        logger.exception("cleaning up after %s %d failed", self._name, child.pid)
                try:
                    self._children[position] = self._spawn()
                except (OSError, RuntimeError):
                    logger.exception("restarting a %s failed", self._name)

    def stop(self, grace_s: float) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self._children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("%s %d did not stop in time; killing it", self._name, child.pid)
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()


def die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the main process dies, so a killed node leaves no worker."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        logger.warning("cannot tie the worker's life to the main process")
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the tie was made


def begin_child(parent_pid: int) -> tuple[NodeConfig, threading.Event]:
    """The common start of every child: die with the parent, read the config from stdin, set
    up logging, and turn SIGTERM into the returned stop event (SIGINT is the parent's)."""
    from dicom_node.logs import configure_logging

    die_with_parent(parent_pid)
    config = read_config_from_stdin()
    configure_logging(os.environ.get("DICOM_NODE_LOG_LEVEL", "INFO"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    return config, stop


def config_json(config: NodeConfig) -> str:
    """The validated config as JSON that validates back to an equal config (aliases such as
    a route condition's `not`, only what the file set)."""
    return config.model_dump_json(by_alias=True, exclude_unset=True)


def read_config_from_stdin() -> NodeConfig:
    return NodeConfig.model_validate_json(sys.stdin.read())


def signal_ready(name: str) -> None:
    sys.stdout.write(f"{name} ready\n")
    sys.stdout.flush()
