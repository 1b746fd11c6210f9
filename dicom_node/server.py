"""`dicom-node serve`: wire storage, index, DIMSE, HTTP and jobs together in one process tree.

Start order: index -> storage (temp files and uncommitted placements from a crash undone)
-> jobs and deliveries a crash interrupted queued again -> DIMSE and HTTP listening sockets
-> their worker processes and the job workers (started together, each waited for) ->
dispatcher, completion scheduler -> ready line. The main process serves no request itself: it
supervises the workers and publishes their counts for /api/health (`dicom_node.node_status`).
SIGTERM/SIGINT: the HTTP workers stop accepting and let running requests finish for
`http.shutdown_grace_s`; the scheduler stops; the DIMSE workers stop accepting and let running
associations finish for `dimse.shutdown_grace_s` (then abort them); the job workers stop (a
running job is queued again), then the dispatcher; the index is closed.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from dicom_node.config.models import NodeConfig
from dicom_node.dimse.scp import bind_listener
from dicom_node.dimse.workers import WorkerPool
from dicom_node.dispatch.dispatcher import Dispatcher
from dicom_node.http.workers import HttpWorkerPool, bind_http_listener
from dicom_node.index import Index
from dicom_node.jobs.executor import JobWorkers, job_queue
from dicom_node.jobs.intake import job_hand_over, pipeline_versions
from dicom_node.node_status import NodeStatus, StatusPublisher, WorkerCount
from dicom_node.series.completion import SeriesCompletion
from dicom_node.storage import InstanceStore

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    return stop


def _run(config: NodeConfig, stop: threading.Event) -> None:
    index = Index(config.database.url, echo=config.database.echo)
    pool: WorkerPool | None = None
    http_pool: HttpWorkerPool | None = None
    job_workers: JobWorkers | None = None
    dispatcher: Dispatcher | None = None
    scheduler: BackgroundScheduler | None = None
    store: InstanceStore | None = None
    publisher: StatusPublisher | None = None
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
        http_listener = bind_http_listener(config.http)
        http_host, http_port = http_listener.getsockname()[:2]

        job_workers = JobWorkers(config, queue)
        pool = WorkerPool(config, listener, config.dimse.worker_count(), tls_listener)
        publisher = StatusPublisher()
        http_pool = HttpWorkerPool(config, http_listener, publisher.fileno())
        publisher.start(_collect_status(pool, job_workers, http_pool))
        # Every worker imports and opens its resources while the others do.
        job_workers.launch()
        http_pool.launch()
        pool.start()
        http_pool.wait_ready()
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
        if stop.is_set():
            return  # stopped by a signal while starting
        sys.stdout.write(
            f"ready dimse={_format_host(dimse_host)}:{dimse_port}"
            f" http={_format_host(http_host)}:{http_port}{ready_extra}\n"
        )
        sys.stdout.flush()
        logger.info("dicom-node ready", extra={"ae_title": config.node.ae_title})
        stop.wait()
    finally:
        if http_pool is not None:
            http_pool.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if pool is not None:
            pool.stop(config.dimse.shutdown_grace_s)
        if job_workers is not None:
            job_workers.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if publisher is not None:
            publisher.close()
        if store is not None:
            store.close()
        index.close()
        logger.info("dicom-node stopped")


def _collect_status(
    dimse: WorkerPool, jobs: JobWorkers, http: HttpWorkerPool
) -> Callable[[], NodeStatus]:
    return lambda: NodeStatus(
        dimse_workers=WorkerCount(*dimse.status()),
        job_workers=WorkerCount(*jobs.status()),
        http_workers=WorkerCount(*http.status()),
    )


def serve(config: NodeConfig) -> None:
    _run(config, _stop_on_signals())
