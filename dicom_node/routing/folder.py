"""A series from a folder of DICOM files, as routing sees it (for `dicom-node route explain`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from dicom_node.routing.evaluate import SeriesDescriptor

__all__ = ["describe_series_folder"]

logger = logging.getLogger(__name__)

_SERIES_INSTANCE_UID = "SeriesInstanceUID"
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR (PS3.10 7.2), not an instance


def _read_header(path: Path, *tags: str) -> pydicom.Dataset | None:
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(tags) or None)
    except (InvalidDicomError, OSError, EOFError):
        return None
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == _MEDIA_STORAGE_DIRECTORY:
        return None
    return dataset


def describe_series_folder(folder: Path) -> SeriesDescriptor:
    """The series of the first DICOM file (by name) in `folder`, with the number of files in
    the folder that belong to it. Files that are not DICOM instances (PS3.10 files other than a
    DICOMDIR) are skipped and logged; subfolders are not read. No AE titles: the caller knows
    them. Raises NotADirectoryError, or FileNotFoundError when there is no DICOM file."""
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    header: pydicom.Dataset | None = None
    count = skipped = other_series = 0
    for path in sorted(item for item in folder.iterdir() if item.is_file()):
        if header is None:
            header = _read_header(path)
            if header is None:
                skipped += 1
            else:
                count = 1
            continue
        dataset = _read_header(path, _SERIES_INSTANCE_UID)
        if dataset is None:
            skipped += 1
        elif dataset.get(_SERIES_INSTANCE_UID) == header.get(_SERIES_INSTANCE_UID):
            count += 1
        else:
            other_series += 1
    if header is None:
        raise FileNotFoundError(f"no DICOM files in {folder}")
    if skipped or other_series:
        logger.warning(
            "%s: skipped %d files that are not DICOM and %d of other series",
            folder,
            skipped,
            other_series,
        )
    return SeriesDescriptor(header, count)
