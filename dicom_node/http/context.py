"""What the HTTP application is given by the server: the index and the node's services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dicom_node.config.models import ViewerConfig
from dicom_node.dicomweb import DicomWebContext
from dicom_node.index import Index
from dicom_node.jobs import JobQueue
from dicom_node.series.completion import SeriesCompletion

__all__ = ["ApiContext"]


def _none_running() -> tuple[int, int]:
    return (0, 0)


@dataclass(frozen=True)
class ApiContext:
    index: Index
    stable_after_s: float
    ae_title: str
    storage_path: str
    # (running, configured) DIMSE worker processes and job worker processes
    dimse_workers: Callable[[], tuple[int, int]] = _none_running
    job_workers: Callable[[], tuple[int, int]] = _none_running
    completion: SeriesCompletion[Any] | None = None
    jobs: JobQueue | None = None
    dicomweb: DicomWebContext | None = None
    # The OHIF build served at the web root (http.viewer); None serves no viewer.
    viewer: ViewerConfig | None = None
