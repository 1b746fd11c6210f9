"""From a ready series to jobs: route it, merge the decisions per pipeline, enqueue.

This is the hand-over `dicom_node.series.completion` calls: `plan` reads one header and
evaluates the routes (outside any transaction); `commit` creates the jobs inside the
transaction that marks the series ready.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from dicom_node.config.models import NodeConfig
from dicom_node.jobs.queue import JobQueue, JobRequest
from dicom_node.routing import SeriesDescriptor, evaluate_routes
from dicom_node.series.completion import HandOver, SeriesReady, read_header
from pipelines import create_pipeline
from pipelines.model_pipeline import ModelPipeline
from pipelines.models import ModelStore

if TYPE_CHECKING:  # the runtime imports torch: only where a model pipeline is routed
    from pipelines.runtime import ModelRuntime

__all__ = [
    "job_hand_over",
    "job_requests",
    "model_runtime",
    "pipeline_versions",
    "routed_models",
]

logger = logging.getLogger(__name__)


def model_runtime(config: NodeConfig, *, device: str | None = None) -> ModelRuntime:
    """A model runtime over the configured store (`inference` settings). Constructing it loads
    no model; `device` overrides `inference.device` (versions need no GPU)."""
    from pipelines.runtime import ModelRuntime

    return ModelRuntime(
        ModelStore(config.models_dir),
        device=device or config.inference.device,
        memory_budget_mb=config.inference.resident_memory_mb,
    )


def pipeline_versions(config: NodeConfig) -> dict[str, str]:
    """Version of every routed pipeline (part of the job key). Creating a pipeline is cheap:
    pipelines load their models on first use, in the job workers. A model pipeline's version
    names its installed models' versions, read from the store's manifests (no torch import)."""
    store = ModelStore(config.models_dir)
    versions = {}
    for name in sorted({route.pipeline for route in config.routes}):
        pipeline = create_pipeline(name, config.pipelines.get(name, {}))
        if isinstance(pipeline, ModelPipeline):
            versions[name] = pipeline.version_with(store)
        else:
            versions[name] = pipeline.version
    return versions


def routed_models(config: NodeConfig) -> dict[str, tuple[str, ...]]:
    """Routed pipeline -> the installed models it needs (none for classical pipelines)."""
    names = sorted({route.pipeline for route in config.routes})
    return {
        name: tuple(
            getattr(create_pipeline(name, config.pipelines.get(name, {})), "required_models", ())
        )
        for name in names
    }


def job_requests(
    config: NodeConfig, descriptor: SeriesDescriptor, versions: Mapping[str, str]
) -> list[JobRequest]:
    """One request per pipeline among the matching routes (destinations merged, in order)."""
    merged: dict[str, tuple[list[str], list[str]]] = {}
    for decision in evaluate_routes(config.routes, descriptor):
        routes, send_to = merged.setdefault(decision.pipeline, ([], []))
        routes.append(decision.route)
        send_to.extend(name for name in decision.send_to if name not in send_to)
    return [
        JobRequest(pipeline, versions[pipeline], tuple(routes), tuple(send_to))
        for pipeline, (routes, send_to) in merged.items()
    ]


def job_hand_over(
    config: NodeConfig, queue: JobQueue, versions: Mapping[str, str]
) -> HandOver[list[JobRequest]]:
    def plan(ready: SeriesReady) -> list[JobRequest]:
        snapshot = ready.snapshot
        header = read_header(config.storage.path / snapshot.instances[0].file_path)
        calling, called = snapshot.most_common_ae_titles()
        descriptor = SeriesDescriptor(header, snapshot.instance_count, calling, called)
        requests = job_requests(config, descriptor, versions)
        if not requests:
            logger.info("no route matches", extra={"series": snapshot.series_instance_uid})
        return requests

    def commit(connection: Connection, ready: SeriesReady, requests: list[JobRequest]) -> list[int]:
        snapshot = ready.snapshot
        return queue.enqueue(
            connection,
            series_instance_uid=snapshot.series_instance_uid,
            study_instance_uid=snapshot.study_instance_uid,
            content_sha256=snapshot.content_sha256,
            instance_count=snapshot.instance_count,
            requests=requests,
        )

    return HandOver(plan, commit)
