"""The index of everything stored: patient -> study -> series -> instance."""

from dicom_node.index.repository import (
    Index,
    IndexedInstance,
    SeriesSummary,
    StoredInstance,
    StudySummary,
    SupersededFile,
    as_utc,
)

__all__ = [
    "Index",
    "IndexedInstance",
    "SeriesSummary",
    "StoredInstance",
    "StudySummary",
    "SupersededFile",
    "as_utc",
]
