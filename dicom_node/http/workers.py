"""HTTP worker processes sharing one listening socket (admin API, DICOMweb, viewer).

As for DIMSE (`dicom_node.dimse.workers`): one Python process runs one thread at a time, so
`http.workers` processes accept on the one socket the main process bound, and the kernel hands
each connection to one of them. Each worker runs uvicorn with the whole application over its
own index connection and instance store; what they share (series hand-over, job queue) is
decided in the index with compare-and-set, safe across processes. The worker counts shown by
`/api/health` come from the main process (`dicom_node.node_status`).

A worker stops on SIGTERM (the main process's stop): uvicorn stops accepting, lets running
requests finish for `http.shutdown_grace_s`, then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import sys
import threading
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from dicom_node.config.models import HttpConfig, NodeConfig
from dicom_node.dicomweb import DicomWebContext
from dicom_node.http.app import ApiContext, create_app
from dicom_node.http.security import install_security
from dicom_node.index import Index
from dicom_node.jobs.executor import job_queue
from dicom_node.jobs.intake import job_hand_over, pipeline_versions, routed_models
from dicom_node.node_status import NodeStatus, StatusReader
from dicom_node.processes import SupervisedProcesses, begin_child, signal_ready
from dicom_node.series.completion import SeriesCompletion
from dicom_node.storage import InstanceStore
from dicom_node.tls import BCP195_CIPHERS
from pipelines.models import ModelStore

__all__ = ["WORKER_NAME", "HttpWorkerPool", "bind_http_listener", "run_worker"]

WORKER_NAME = "http-worker"


def bind_http_listener(config: HttpConfig) -> socket.socket:
    """A listening TCP socket on http.host and http.port (0: a free port)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((config.host, config.port))
    listener.listen(2048)  # uvicorn's default backlog
    return listener


class HttpWorkerPool:
    """Main process: `http.workers` supervised HTTP workers on `listener`."""

    def __init__(self, config: NodeConfig, listener: socket.socket, status_fd: int) -> None:
        self._listener = listener
        self._grace_s = config.http.shutdown_grace_s
        fd = listener.fileno()
        self._processes = SupervisedProcesses(
            WORKER_NAME,
            "dicom_node.http.workers",
            config,
            config.http.worker_count(),
            args=[str(fd), str(status_fd)],
            pass_fds=[fd, status_fd],
        )

    def launch(self) -> None:
        """Start the workers without waiting for them (see `wait_ready`)."""
        self._processes.launch()

    def wait_ready(self) -> None:
        self._processes.wait_ready()

    def status(self) -> tuple[int, int]:
        """(running, configured) worker processes."""
        return self._processes.status()

    def stop(self) -> None:
        # Requests get `grace_s` inside the worker; allow for the worker's own shutdown.
        self._processes.stop(self._grace_s + 15)
        self._listener.close()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the main process decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def node_app(
    config: NodeConfig,
    index: Index,
    store: InstanceStore,
    node_status: Callable[[], NodeStatus | None],
) -> FastAPI:
    """The node's HTTP application: admin API, DICOMweb, viewer, behind http.auth and CORS."""
    queue = job_queue(config, index)
    completion = SeriesCompletion(
        index,
        config.storage.path,
        config.series,
        job_hand_over(config, queue, pipeline_versions(config)),
    )
    app = create_app(
        ApiContext(
            index=index,
            stable_after_s=config.series.stable_after_s,
            ae_title=config.node.ae_title,
            storage_path=str(config.storage.path),
            node_status=node_status,
            completion=completion,
            jobs=queue,
            dicomweb=DicomWebContext(
                index=index,
                store=store,
                ae_title=config.node.ae_title,
                max_request_bytes=config.http.max_request_bytes,
            ),
            viewer=config.http.viewer,
            models=ModelStore(config.models_dir),
            routed_models=routed_models(config),
        )
    )
    install_security(app, config.http)
    return app


def _http_server(app: FastAPI, config: HttpConfig) -> _Server:
    https = config.tls
    return _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=https.certificate if https else None,
            ssl_keyfile=https.key if https else None,
            ssl_ciphers=BCP195_CIPHERS,
            timeout_graceful_shutdown=math.ceil(config.shutdown_grace_s),
        )
    )


async def _serve(server: _Server, listener: socket.socket) -> None:
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if serving.done():
            serving.result()  # re-raises why HTTP could not start
            if server.should_exit:
                return  # stopped while starting
            raise RuntimeError("HTTP server stopped before it started")
        await asyncio.sleep(0.02)
    signal_ready(WORKER_NAME)
    await serving


def run_worker(listener_fd: int, status_fd: int, parent_pid: int) -> int:
    """A worker: read the config from stdin, serve HTTP on the shared socket until SIGTERM."""
    config, stop = begin_child(parent_pid)
    status = StatusReader(status_fd)
    index = Index(config.database.url, echo=config.database.echo)
    store = InstanceStore.from_config(config.storage, index)
    try:
        server = _http_server(node_app(config, index, store, status.read), config.http)

        def exit_on_stop() -> None:
            stop.wait()
            server.should_exit = True  # uvicorn checks it every 0.1 s

        threading.Thread(target=exit_on_stop, name="http-stop", daemon=True).start()
        asyncio.run(_serve(server, socket.socket(fileno=listener_fd)))
    finally:
        store.close()
        index.close()
        status.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
