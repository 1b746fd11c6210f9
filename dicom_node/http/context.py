"""What the HTTP application is given by the server: the index and the node's services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dicom_node.config.models import ViewerConfig
from dicom_node.dicomweb import DicomWebContext
from dicom_node.index import Index
from dicom_node.jobs import JobQueue
from dicom_node.node_status import NodeStatus
from dicom_node.series.completion import SeriesCompletion
from pipelines.models import ModelStore

__all__ = ["ApiContext"]


def _no_status() -> NodeStatus | None:
    return None


@dataclass(frozen=True)
class ApiContext:
    index: Index
    stable_after_s: float
    ae_title: str
    storage_path: str
    # The worker counts the main process published; None when it has not answered lately.
    node_status: Callable[[], NodeStatus | None] = _no_status
    completion: SeriesCompletion[Any] | None = None
    jobs: JobQueue | None = None
    dicomweb: DicomWebContext | None = None
    # The OHIF build served at the web root (http.viewer); None serves no viewer.
    viewer: ViewerConfig | None = None
    # The model store (read only: listing needs no torch) and, per routed pipeline, the
    # models it needs; /api/health lists those missing.
    models: ModelStore | None = None
    routed_models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
