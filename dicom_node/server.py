"""`dicom-node serve`: wire storage, index, DIMSE SCP and HTTP together in one process.

Start order: index -> storage (temp files and uncommitted placements from a crash undone)
-> jobs and deliveries a crash interrupted queued again -> DIMSE listening socket and its
worker processes -> job workers, dispatcher, completion scheduler -> HTTP -> ready line.
SIGTERM/SIGINT: stop HTTP and the scheduler, tell the DIMSE workers to stop accepting and let
running associations finish for `dimse.shutdown_grace_s` (then abort them), stop the job
workers (a running job is queued again) and the dispatcher, close the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Generator

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler

from dicom_node.config.models import NodeConfig
from dicom_node.dicomweb import DicomWebContext
from dicom_node.dimse.scp import bind_listener
from dicom_node.dimse.workers import WorkerPool
from dicom_node.dispatch.dispatcher import Dispatcher
from dicom_node.http.app import ApiContext, create_app
from dicom_node.http.security import install_security
from dicom_node.index import Index
from dicom_node.jobs.executor import JobWorkers, job_queue
from dicom_node.jobs.intake import job_hand_over
from dicom_node.series.completion import SeriesCompletion
from dicom_node.storage import InstanceStore
from dicom_node.tls import BCP195_CIPHERS
from pipelines import create_pipeline

__all__ = ["serve"]

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node stops HTTP and DIMSE together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pipeline_versions(config: NodeConfig) -> dict[str, str]:
    """Version of every routed pipeline (part of the job key). Creating a pipeline is cheap:
    pipelines load their models on first use, in the job workers."""
    names = {route.pipeline for route in config.routes}
    return {name: create_pipeline(name, config.pipelines.get(name, {})).version for name in names}


async def _run(config: NodeConfig) -> None:
    index = Index(config.database.url, echo=config.database.echo)
    pool: WorkerPool | None = None
    job_workers: JobWorkers | None = None
    dispatcher: Dispatcher | None = None
    scheduler: BackgroundScheduler | None = None
    store: InstanceStore | None = None
    try:
        store = InstanceStore.from_config(config.storage, index)
        removed = store.area.prepare()
        if removed:
            logger.warning("removed %d incomplete temp file(s) left by an earlier stop", removed)
        undone = store.recover()
        if undone:
            logger.warning("undid %d instance(s) a crash left written but not indexed", undone)
        queue = job_queue(config, index)
        interrupted = queue.requeue_interrupted()
        if interrupted:
            logger.warning("queued again %d job(s) interrupted by an earlier stop", interrupted)
        completion = SeriesCompletion(
            index,
            config.storage.path,
            config.series,
            job_hand_over(config, queue, pipeline_versions(config)),
        )
        listener = bind_listener(config.dimse)
        dimse_host, dimse_port = listener.getsockname()[:2]
        tls_listener = None
        ready_extra = ""
        if config.dimse.tls is not None and config.dimse.tls.port is not None:
            tls_listener = bind_listener(config.dimse, config.dimse.tls.port)
            tls_host, tls_port = tls_listener.getsockname()[:2]
            ready_extra = f" dimse_tls={_format_host(tls_host)}:{tls_port}"
        job_workers = JobWorkers(config, queue)
        job_workers.launch()  # they import pipelines while the DIMSE workers start
        pool = WorkerPool(config, listener, config.dimse.worker_count(), tls_listener)
        pool.start()
        job_workers.wait_ready()
        dispatcher = Dispatcher(config, index, queue.outbox)
        dispatcher.start()
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            completion.check,
            "interval",
            seconds=config.series.check_interval_s,
            max_instances=1,
            coalesce=True,
            id="series-completion",
        )
        scheduler.start()

        app = create_app(
            ApiContext(
                index=index,
                stable_after_s=config.series.stable_after_s,
                ae_title=config.node.ae_title,
                storage_path=str(config.storage.path),
                dimse_workers=pool.status,
                job_workers=job_workers.status,
                completion=completion,
                jobs=queue,
                dicomweb=DicomWebContext(
                    index=index,
                    store=store,
                    ae_title=config.node.ae_title,
                    max_request_bytes=config.http.max_request_bytes,
                ),
                viewer=config.http.viewer,
            )
        )
        install_security(app, config.http)
        https = config.http.tls
        http = _Server(
            uvicorn.Config(
                app,
                host=config.http.host,
                port=config.http.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                ssl_certfile=https.certificate if https else None,
                ssl_keyfile=https.key if https else None,
                ssl_ciphers=BCP195_CIPHERS,
            )
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _request_exit, http, signum)
        serving = asyncio.create_task(http.serve())
        while not http.started:
            if serving.done():
                serving.result()  # re-raises why HTTP could not start
                if http.should_exit:
                    return  # stopped by a signal while starting
                raise RuntimeError("HTTP server stopped before it started")
            await asyncio.sleep(0.02)
        http_host, http_port = http.servers[0].sockets[0].getsockname()[:2]
        sys.stdout.write(
            f"ready dimse={_format_host(dimse_host)}:{dimse_port}"
            f" http={_format_host(http_host)}:{http_port}{ready_extra}\n"
        )
        sys.stdout.flush()
        logger.info("dicom-node ready", extra={"ae_title": config.node.ae_title})
        await serving
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if pool is not None:
            pool.stop(config.dimse.shutdown_grace_s)
        if job_workers is not None:
            job_workers.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if store is not None:
            store.close()
        index.close()
        logger.info("dicom-node stopped")


def _request_exit(http: uvicorn.Server, signum: int) -> None:
    logger.info("received %s, stopping", signal.Signals(signum).name)
    http.should_exit = True


def serve(config: NodeConfig) -> None:
    asyncio.run(_run(config))
