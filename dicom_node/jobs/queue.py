"""Persisted jobs: one per route decision, keyed by series + pipeline + version + content.

States: queued -> running -> succeeded | failed. A transient failure (I/O, a crash) goes back
to queued with exponential backoff until `executor.max_attempts`; a permanent one (the series
cannot be assembled, the pipeline refuses it) fails at once. A job a crash left running is
queued again when the node starts (`requeue_interrupted`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dicom_node.dispatch.outbox import Outbox
from dicom_node.index import Index, as_utc
from dicom_node.index.schema import JobRow

__all__ = ["Job", "JobQueue", "JobRequest", "JobState", "job_key"]

_JOB = cast(Table, JobRow.__table__)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobRequest:
    """What routing asks of one pipeline for one series (decisions merged by pipeline)."""

    pipeline: str
    pipeline_version: str
    routes: tuple[str, ...]
    send_to: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    id: int
    job_key: str
    series_instance_uid: str
    study_instance_uid: str
    pipeline: str
    pipeline_version: str
    content_sha256: str
    instance_count: int
    routes: tuple[str, ...]
    send_to: tuple[str, ...]
    state: JobState
    attempts: int
    max_attempts: int
    error: str
    next_attempt_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float]
    result_instances: tuple[str, ...]
    worker: str


def job_key(series_instance_uid: str, pipeline: str, version: str, content_sha256: str) -> str:
    text = f"{series_instance_uid}\n{pipeline}\n{version}\n{content_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()


def _job(row: Any) -> Job:
    next_attempt_at, created_at = as_utc(row.next_attempt_at), as_utc(row.created_at)
    assert next_attempt_at is not None
    assert created_at is not None
    return Job(
        id=row.id,
        job_key=row.job_key,
        series_instance_uid=row.series_instance_uid,
        study_instance_uid=row.study_instance_uid,
        pipeline=row.pipeline,
        pipeline_version=row.pipeline_version,
        content_sha256=row.content_sha256,
        instance_count=row.instance_count,
        routes=tuple(json.loads(row.routes)),
        send_to=tuple(json.loads(row.send_to)),
        state=JobState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        error=row.error,
        next_attempt_at=next_attempt_at,
        created_at=created_at,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        timings=json.loads(row.timings),
        result_instances=tuple(json.loads(row.result_instances)),
        worker=row.worker,
    )


class JobQueue:
    def __init__(
        self,
        index: Index,
        *,
        max_attempts: int,
        retry_backoff_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._index = index
        self._max_attempts = max_attempts
        self._backoff_s = retry_backoff_s
        self._clock = clock
        dialect_insert = sqlite.insert if index.dialect == "sqlite" else postgresql.insert
        self._insert_new = dialect_insert(_JOB).on_conflict_do_nothing(
            index_elements=[_JOB.c.job_key]
        )
        self.outbox = Outbox(index, clock=clock)

    def enqueue(
        self,
        connection: Connection,
        *,
        series_instance_uid: str,
        study_instance_uid: str,
        content_sha256: str,
        instance_count: int,
        requests: Sequence[JobRequest],
    ) -> list[int]:
        """Create the jobs (inside the caller's transaction); a job whose key exists already
        (same series content, pipeline and version) is not created again. Returns job ids."""
        now = self._clock()
        ids = []
        for request in requests:
            key = job_key(
                series_instance_uid, request.pipeline, request.pipeline_version, content_sha256
            )
            connection.execute(
                self._insert_new,
                {
                    "job_key": key,
                    "series_instance_uid": series_instance_uid,
                    "study_instance_uid": study_instance_uid,
                    "pipeline": request.pipeline,
                    "pipeline_version": request.pipeline_version,
                    "content_sha256": content_sha256,
                    "instance_count": instance_count,
                    "routes": json.dumps(list(request.routes)),
                    "send_to": json.dumps(list(request.send_to)),
                    "state": JobState.QUEUED.value,
                    "attempts": 0,
                    "max_attempts": self._max_attempts,
                    "error": "",
                    "next_attempt_at": now,
                    "created_at": now,
                    "timings": "{}",
                    "result_instances": "[]",
                    "worker": "",
                },
            )
            ids.append(
                connection.execute(select(_JOB.c.id).where(_JOB.c.job_key == key)).scalar_one()
            )
        return ids

    def claim(self, worker: str) -> Job | None:
        """Take the oldest due queued job for `worker`, or None."""
        now = self._clock()
        due = (_JOB.c.state == JobState.QUEUED.value) & (_JOB.c.next_attempt_at <= now)
        # Idle workers ask often: look with a read first, take the write lock only for work.
        with self._index.read_connection() as connection:
            if connection.execute(select(_JOB.c.id).where(due).limit(1)).first() is None:
                return None
        with self._index.write_transaction() as connection:
            row = connection.execute(
                select(_JOB)
                .where(due)
                .order_by(_JOB.c.next_attempt_at, _JOB.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            connection.execute(
                update(_JOB)
                .where(_JOB.c.id == row.id)
                .values(
                    state=JobState.RUNNING.value,
                    attempts=_JOB.c.attempts + 1,
                    started_at=now,
                    finished_at=None,
                    worker=worker,
                )
            )
            claimed = connection.execute(select(_JOB).where(_JOB.c.id == row.id)).one()
        return _job(claimed)

    def succeed(
        self,
        job: Job,
        *,
        result_instances: Sequence[str],
        timings: dict[str, float],
        deliveries: Sequence[tuple[str, int]],
    ) -> None:
        """Record success and put the results in the outbox, one entry per (destination,
        max_attempts), in one transaction."""
        now = self._clock()
        with self._index.write_transaction() as connection:
            connection.execute(
                update(_JOB)
                .where(_JOB.c.id == job.id)
                .values(
                    state=JobState.SUCCEEDED.value,
                    error="",
                    finished_at=now,
                    timings=json.dumps(timings),
                    result_instances=json.dumps(list(result_instances)),
                )
            )
            for destination, max_attempts in deliveries:
                self.outbox.add(connection, job.id, destination, result_instances, max_attempts)

    def fail(self, job: Job, error: str, *, transient: bool, timings: dict[str, float]) -> JobState:
        """Record a failed attempt: queued again with backoff if transient and attempts remain,
        else failed. Returns the new state."""
        now = self._clock()
        retry = transient and job.attempts < job.max_attempts
        values: dict[str, Any] = {"error": error[:2000], "timings": json.dumps(timings)}
        if retry:
            delay = self._backoff_s * 2 ** max(0, job.attempts - 1)
            values |= {
                "state": JobState.QUEUED.value,
                "next_attempt_at": now + timedelta(seconds=delay),
            }
        else:
            values |= {"state": JobState.FAILED.value, "finished_at": now}
        with self._index.write_transaction() as connection:
            connection.execute(update(_JOB).where(_JOB.c.id == job.id).values(**values))
        return JobState.QUEUED if retry else JobState.FAILED

    def requeue_interrupted(self) -> int:
        """Jobs left running by a stop or crash go back to the queue (node start only)."""
        with self._index.write_transaction() as connection:
            return connection.execute(
                update(_JOB)
                .where(_JOB.c.state == JobState.RUNNING.value)
                .values(state=JobState.QUEUED.value, next_attempt_at=self._clock(), worker="")
            ).rowcount

    def worker_died(self, worker: str) -> int:
        """The jobs a dead worker was running: a failed attempt each (a job that kills its
        worker every time must not loop forever). Returns how many."""
        with self._index.read_connection() as connection:
            rows = connection.execute(
                select(_JOB).where(_JOB.c.state == JobState.RUNNING.value, _JOB.c.worker == worker)
            ).all()
        for row in rows:
            job = _job(row)
            self.fail(
                job,
                f"attempt {job.attempts}: the worker running it died",
                transient=True,
                timings=job.timings,
            )
        return len(rows)

    def retry(self, job_id: int) -> Job | None:
        """Operator retry: a failed job is queued again with fresh attempts, and its
        dead-lettered deliveries are sent again. None if there is no such job."""
        now = self._clock()
        with self._index.write_transaction() as connection:
            row = connection.execute(select(_JOB).where(_JOB.c.id == job_id)).first()
            if row is None:
                return None
            if row.state == JobState.FAILED.value:
                connection.execute(
                    update(_JOB)
                    .where(_JOB.c.id == job_id)
                    .values(
                        state=JobState.QUEUED.value,
                        attempts=0,
                        error="",
                        next_attempt_at=now,
                        finished_at=None,
                    )
                )
            self.outbox.revive(connection, job_id)
            return _job(connection.execute(select(_JOB).where(_JOB.c.id == job_id)).one())

    def get(self, job_id: int) -> Job | None:
        with self._index.read_connection() as connection:
            row = connection.execute(select(_JOB).where(_JOB.c.id == job_id)).first()
        return None if row is None else _job(row)

    def list(
        self, *, series_instance_uid: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        query = select(_JOB).order_by(_JOB.c.id.desc()).limit(limit).offset(offset)
        if series_instance_uid is not None:
            query = query.where(_JOB.c.series_instance_uid == series_instance_uid)
        with self._index.read_connection() as connection:
            return [_job(row) for row in connection.execute(query)]
