"""`dicom-node jobs list|retry`: the job queue from the command line (reads the index)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicom_node.commands import EXIT_FAILURE, EXIT_INVALID_CONFIG, EXIT_OK
from dicom_node.commands.serve import DEFAULT_CONFIG
from dicom_node.config import load_config
from dicom_node.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports the index only when a command needs it
    from dicom_node.jobs.queue import JobQueue

__all__ = ["register"]


def register(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="list and retry jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_commands.add_parser("list", help="jobs, newest first")
    listing.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    listing.add_argument("--series", help="only jobs of this SeriesInstanceUID")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON (as /api/jobs)")
    listing.set_defaults(handler=_list)
    retry = jobs_commands.add_parser(
        "retry", help="run a failed job again and resend its dead-lettered deliveries"
    )
    retry.add_argument("job_id", type=int)
    retry.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    retry.set_defaults(handler=_retry)


@contextmanager
def _job_queue(path: Path) -> Iterator[JobQueue]:
    """The job queue of the node configured in `path` (raises ConfigError)."""
    from dicom_node.index import Index
    from dicom_node.jobs.executor import job_queue

    config = load_config(path)
    index = Index(config.database.url, echo=config.database.echo)
    try:
        yield job_queue(config, index)
    finally:
        index.close()


def _invalid_config(exc: ConfigError) -> int:
    sys.stderr.write(f"{exc}\n")
    return EXIT_INVALID_CONFIG


def _list(args: argparse.Namespace) -> int:
    from dicom_node.http.jobs import job_to_json

    try:
        with _job_queue(args.config) as queue:
            jobs = queue.list(series_instance_uid=args.series, limit=args.limit)
            deliveries = queue.outbox.for_jobs([job.id for job in jobs])
    except ConfigError as exc:
        return _invalid_config(exc)
    if args.json:
        payload = [job_to_json(job, deliveries.get(job.id, [])) for job in jobs]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return EXIT_OK
    sys.stdout.write(f"{'id':>6}  {'state':<10} {'pipeline':<16} {'sent':<10} series / error\n")
    for job in jobs:
        owed = deliveries.get(job.id, [])
        sent = f"{sum(d.state.value == 'sent' for d in owed)}/{len(owed)}" if owed else "-"
        dead = [d for d in owed if d.state.value == "dead"]
        note = job.error or (f"dead letter: {dead[0].destination}: {dead[0].error}" if dead else "")
        sys.stdout.write(
            f"{job.id:>6}  {job.state.value:<10} {job.pipeline:<16} {sent:<10} "
            f"{job.series_instance_uid}{'  ' + note if note else ''}\n"
        )
    return EXIT_OK


def _retry(args: argparse.Namespace) -> int:
    try:
        with _job_queue(args.config) as queue:
            job = queue.retry(args.job_id)
    except ConfigError as exc:
        return _invalid_config(exc)
    if job is None:
        sys.stderr.write(f"there is no job {args.job_id}\n")
        return EXIT_FAILURE
    sys.stdout.write(f"job {job.id}: {job.state.value}\n")
    return EXIT_OK
