"""Query/Retrieve SCP (PS3.4 annex C): the SOP classes, their presentation contexts and the
service handlers registered with the association loop.

Patient Root and Study Root information models, each with FIND, MOVE and GET (PS3.4 C.6.1,
C.6.2). Identifiers are exchanged in explicit or implicit VR little endian only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext, build_context

from dicom_node.config.models import DimseDestinationConfig, NodeConfig
from dicom_node.index import Index
from dicom_node.storage import StorageArea

__all__ = [
    "PATIENT_ROOT_FIND",
    "PATIENT_ROOT_GET",
    "PATIENT_ROOT_MOVE",
    "STUDY_ROOT_FIND",
    "STUDY_ROOT_GET",
    "STUDY_ROOT_MOVE",
    "QueryRetrieveContext",
    "query_retrieve_contexts",
]

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

PATIENT_ROOT_CLASSES = frozenset({PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET})
QUERY_RETRIEVE_CLASSES = (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    PATIENT_ROOT_GET,
    STUDY_ROOT_FIND,
    STUDY_ROOT_MOVE,
    STUDY_ROOT_GET,
)


@dataclass(frozen=True)
class QueryRetrieveContext:
    """What the Q/R services need, passed in by the worker that owns them."""

    index: Index
    area: StorageArea
    ae_title: str
    # C-MOVE destinations by AE title (PS3.4 C.4.2.1.4: Move Destination is an AE title).
    destinations: Mapping[str, DimseDestinationConfig]
    # dimse.max_find_results: 0 means no limit.
    max_find_results: int

    @classmethod
    def from_config(
        cls, config: NodeConfig, index: Index, area: StorageArea
    ) -> QueryRetrieveContext:
        destinations: dict[str, DimseDestinationConfig] = {}
        for destination in config.destinations.values():
            if isinstance(destination, DimseDestinationConfig):
                destinations.setdefault(destination.ae_title, destination)
        return cls(
            index=index,
            area=area,
            ae_title=config.node.ae_title,
            destinations=destinations,
            max_find_results=config.dimse.max_find_results,
        )


def query_retrieve_contexts() -> list[PresentationContext]:
    """The Q/R presentation contexts the SCP accepts."""
    syntaxes: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    return [build_context(sop_class, syntaxes) for sop_class in QUERY_RETRIEVE_CLASSES]


def is_patient_root(sop_class_uid: str) -> bool:
    return sop_class_uid in PATIENT_ROOT_CLASSES
