"""Local job worker processes (`executor.kind: local`).

Each worker claims due jobs from the index, runs them with its resident pipelines and records
the outcome; idle, it looks for work five times a second. On SIGTERM it finishes nothing new:
the job it runs gets `executor.shutdown_grace_s` to end, then the main process stops it and
queues the job again.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

from dicom_node.config.models import NodeConfig
from dicom_node.index import Index
from dicom_node.jobs.executor import WORKER_NAME, job_queue, worker_id
from dicom_node.jobs.queue import Job, JobQueue, JobState
from dicom_node.jobs.runner import JobRunner, PermanentJobError
from dicom_node.processes import begin_child, signal_ready
from dicom_node.storage import InstanceStore

__all__ = ["run_job", "run_worker"]

logger = logging.getLogger(__name__)

_IDLE_POLL_S = 0.2


def run_job(queue: JobQueue, runner: JobRunner, job: Job, config: NodeConfig) -> JobState:
    """Run one claimed job and record its outcome."""
    extra = {"job": job.id, "series": job.series_instance_uid, "pipeline": job.pipeline}
    logger.info("job started (attempt %d)", job.attempts, extra=extra)
    try:
        output = runner.run(job)
    except PermanentJobError as exc:
        logger.error("job failed: %s", exc, extra=extra)
        return queue.fail(job, str(exc), transient=False, timings={})
    except Exception as exc:
        logger.exception("job attempt failed", extra=extra)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return queue.fail(job, f"attempt {job.attempts}: {detail}", transient=True, timings={})
    deliveries = [
        (name, config.destinations[name].max_attempts)
        for name in job.send_to
        if name in config.destinations
    ]
    queue.succeed(
        job,
        result_instances=output.result_instances,
        timings=output.timings,
        deliveries=deliveries,
    )
    logger.info("job succeeded in %s", output.timings, extra=extra)
    return JobState.SUCCEEDED


def run_worker(parent_pid: int) -> int:
    config, stop = begin_child(parent_pid)
    index = Index(config.database.url, echo=config.database.echo)
    store = InstanceStore.from_config(config.storage, index)
    queue = job_queue(config, index)
    runner = JobRunner(config, index, store)
    me = worker_id(os.getpid())
    try:
        signal_ready(WORKER_NAME)
        while not stop.is_set():
            job = queue.claim(me)
            if job is None:
                stop.wait(_IDLE_POLL_S)
                continue
            run_job(queue, runner, job, config)
    finally:
        store.close()
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1])))
