"""Finding the stored instances a WADO-RS URL names (PS3.18 10.4.1), UIDs checked first."""

from __future__ import annotations

import logging
from pathlib import Path

from dicom_node.dicomweb.accept import not_acceptable
from dicom_node.dicomweb.context import DicomWebContext
from dicom_node.dicomweb.frames import FrameSource, NoPixelDataError, UnsupportedEncodingError
from dicom_node.http.problems import ProblemError, require_uid
from dicom_node.query.locate import InstanceLocation, locate_instances

__all__ = ["Retriever"]

logger = logging.getLogger(__name__)


class Retriever:
    """Finds stored instances named by a URL (the shared part of every WADO-RS resource)."""

    def __init__(self, context: DicomWebContext) -> None:
        self._context = context

    def locate(
        self, study: str, series: str | None = None, instance: str | None = None
    ) -> list[InstanceLocation]:
        require_uid(study, "StudyInstanceUID")
        if series is not None:
            require_uid(series, "SeriesInstanceUID")
        if instance is not None:
            require_uid(instance, "SOPInstanceUID")
        found = locate_instances(
            self._context.index,
            study_instance_uids=[study],
            series_instance_uids=[series] if series else [],
            sop_instance_uids=[instance] if instance else [],
        )
        if not found:
            what = "Instance" if instance else "Series" if series else "Study"
            raise ProblemError(404, f"{what} not found", f"no such {what.lower()} is stored")
        return found

    def path(self, location: InstanceLocation) -> Path:
        path = self._context.store.area.absolute(location.file_path)
        if not path.is_file():
            logger.error("indexed instance file is missing", extra={"path": location.file_path})
            raise ProblemError(500, "Stored file missing", "an indexed instance file is missing")
        return path

    def frame_source(self, location: InstanceLocation) -> FrameSource:
        try:
            return FrameSource.open(self.path(location))
        except NoPixelDataError as exc:
            raise ProblemError(404, "No frames", "the instance has no Pixel Data") from exc
        except UnsupportedEncodingError as exc:
            raise not_acceptable(f"frames are not served from {exc}") from exc
