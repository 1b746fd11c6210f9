"""What the DICOMweb resources are given by the server."""

from __future__ import annotations

from dataclasses import dataclass

from dicom_node.index import Index
from dicom_node.storage import InstanceStore

__all__ = ["DicomWebContext"]


@dataclass(frozen=True)
class DicomWebContext:
    index: Index
    # The same durable path as C-STORE: file written and synced, then the index committed.
    store: InstanceStore
    ae_title: str
    # Largest STOW-RS request body accepted (http.max_request_bytes).
    max_request_bytes: int
