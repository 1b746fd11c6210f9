"""Persisted jobs and the workers that run them (DESIGN.md: run)."""

from dicom_node.jobs.queue import Job, JobQueue, JobRequest, JobState, job_key

__all__ = ["Job", "JobQueue", "JobRequest", "JobState", "job_key"]
