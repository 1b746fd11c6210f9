"""Admin API for series hand-over and jobs: /api/series/{uid}/ready, /api/jobs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from dicom_node.dispatch import Delivery
from dicom_node.http.context import ApiContext
from dicom_node.http.problems import ProblemError, require_uid
from dicom_node.jobs import Job, JobQueue
from dicom_node.jobs.figures import figure_folder, figure_names

__all__ = ["job_routes", "job_to_json"]


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "destination": delivery.destination,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts,
        "error": delivery.error or None,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
        "sop_instance_uids": list(delivery.sop_instance_uids),
    }


def job_to_json(
    job: Job, deliveries: list[Delivery], figures: list[str] | None = None
) -> dict[str, Any]:
    return {
        "id": job.id,
        "pipeline": job.pipeline,
        "pipeline_version": job.pipeline_version,
        "state": job.state.value,
        "error": job.error or None,
        "series_instance_uid": job.series_instance_uid,
        "study_instance_uid": job.study_instance_uid,
        "routes": list(job.routes),
        "send_to": list(job.send_to),
        "instance_count": job.instance_count,
        "content_sha256": job.content_sha256,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "next_attempt_at": job.next_attempt_at.isoformat(),
        "timings_s": job.timings,
        "result_instances": list(job.result_instances),
        "deliveries": [_delivery_json(d) for d in deliveries],
        "figures": [f"/api/jobs/{job.id}/figures/{name}.png" for name in figures or []],
    }


def _jobs_json(queue: JobQueue, jobs: list[Job], storage: Path) -> list[dict[str, Any]]:
    deliveries = queue.outbox.for_jobs([job.id for job in jobs])
    return [
        job_to_json(job, deliveries.get(job.id, []), figure_names(storage, job.id)) for job in jobs
    ]


def job_routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    storage = Path(context.storage_path)

    def queue() -> JobQueue:
        if context.jobs is None:
            raise ProblemError(503, "Jobs unavailable", "this node runs no job queue")
        return context.jobs

    @router.post("/api/series/{series_instance_uid}/ready")
    def series_ready(series_instance_uid: str) -> dict[str, Any]:
        """Declare a series complete now: route it and create its jobs (idempotent: the same
        content and pipeline never makes a second job)."""
        require_uid(series_instance_uid, "SeriesInstanceUID")
        if context.completion is None:
            raise ProblemError(503, "Completion unavailable", "this node routes no series")
        try:
            handed = context.completion.request(series_instance_uid)
        except RuntimeError as exc:
            raise ProblemError(409, "Series still changing", str(exc)) from exc
        if handed is None:
            raise ProblemError(404, "Series not found", "no instance of this series is stored")
        ready, job_ids = handed
        jobs = [job for job in (queue().get(job_id) for job_id in job_ids) if job is not None]
        return {
            "series_instance_uid": series_instance_uid,
            "instance_count": ready.snapshot.instance_count,
            "reason": ready.reason.value,
            "jobs": _jobs_json(queue(), jobs, storage),
        }

    @router.get("/api/jobs")
    def list_jobs(
        series: Annotated[str | None, Query(description="SeriesInstanceUID")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        if series is not None:
            require_uid(series, "series")
        jobs = queue().list(series_instance_uid=series, limit=limit, offset=offset)
        return _jobs_json(queue(), jobs, storage)

    @router.get("/api/jobs/{job_id}")
    def get_job(job_id: int) -> dict[str, Any]:
        job = queue().get(job_id)
        if job is None:
            raise ProblemError(404, "Job not found", f"there is no job {job_id}")
        return _jobs_json(queue(), [job], storage)[0]

    @router.get("/api/jobs/{job_id}/figures/{name}.png", response_class=FileResponse)
    def job_figure(job_id: int, name: str) -> FileResponse:
        """A figure of the job's result (the LV volume curve of a cine), PNG."""
        if not re.fullmatch(r"[a-z0-9_]{1,64}", name):
            raise ProblemError(404, "Figure not found", f"no figure {name!r}")
        path = figure_folder(storage, job_id) / f"{name}.png"
        if not path.is_file():
            raise ProblemError(404, "Figure not found", f"job {job_id} has no figure {name!r}")
        return FileResponse(path, media_type="image/png")

    @router.post("/api/jobs/{job_id}/retry")
    def retry_job(job_id: int) -> dict[str, Any]:
        """A failed job runs again; its dead-lettered deliveries are sent again."""
        job = queue().retry(job_id)
        if job is None:
            raise ProblemError(404, "Job not found", f"there is no job {job_id}")
        return _jobs_json(queue(), [job], storage)[0]

    return router
