"""The local executor as the main process sees it: supervised job worker processes.

The workers themselves (`dicom_node.jobs.worker`) import the pipelines and the writer; this
module does not, so the main process stays light.
"""

from __future__ import annotations

import logging

from dicom_node.config.models import NodeConfig
from dicom_node.index import Index
from dicom_node.jobs.queue import JobQueue
from dicom_node.processes import SupervisedProcesses

__all__ = ["WORKER_NAME", "JobWorkers", "job_queue", "worker_id"]

logger = logging.getLogger(__name__)

WORKER_NAME = "job-worker"


def job_queue(config: NodeConfig, index: Index) -> JobQueue:
    return JobQueue(
        index,
        max_attempts=config.executor.max_attempts,
        retry_backoff_s=config.executor.retry_backoff_s,
    )


class JobWorkers:
    """The local executor: `executor.workers` supervised worker processes."""

    def __init__(self, config: NodeConfig, queue: JobQueue) -> None:
        self._grace_s = config.executor.shutdown_grace_s
        self._queue = queue
        self._processes = SupervisedProcesses(
            WORKER_NAME,
            "dicom_node.jobs.worker",
            config,
            config.executor.workers,
            on_exit=self._worker_died,
        )

    def _worker_died(self, pid: int) -> None:
        count = self._queue.worker_died(worker_id(pid))
        if count:
            logger.error("job worker %d died while running %d job(s)", pid, count)

    def start(self) -> None:
        self._processes.start()

    def launch(self) -> None:
        """Start the workers without waiting for them (see `wait_ready`)."""
        self._processes.launch()

    def wait_ready(self) -> None:
        self._processes.wait_ready()

    def status(self) -> tuple[int, int]:
        return self._processes.status()

    def stop(self) -> None:
        self._processes.stop(self._grace_s)
        interrupted = self._queue.requeue_interrupted()
        if interrupted:
            logger.warning("%d interrupted job(s) will run again at the next start", interrupted)


def worker_id(pid: int) -> str:
    return f"{WORKER_NAME}-{pid}"
