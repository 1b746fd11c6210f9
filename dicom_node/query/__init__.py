"""Finding what is stored: query matching (C-FIND, QIDO-RS) and retrieve selection
(C-MOVE, C-GET, WADO-RS).

`query_from_identifier` (C-FIND) or `build_query` (QIDO-RS) make a checked `Query`;
`run_query` yields the response identifiers. See docs/QUERY.md for keys and matching.
"""

from dicom_node.query.engine import PAGE_SIZE, run_query
from dicom_node.query.identifier import build_query, query_from_identifier
from dicom_node.query.keys import INDEX_KEYS, keys_at
from dicom_node.query.locate import InstanceLocation, locate_instances
from dicom_node.query.model import (
    InformationModel,
    Matching,
    Query,
    QueryError,
    QueryKey,
    QueryLevel,
    QueryLevelError,
)

__all__ = [
    "INDEX_KEYS",
    "PAGE_SIZE",
    "InformationModel",
    "InstanceLocation",
    "Matching",
    "Query",
    "QueryError",
    "QueryKey",
    "QueryLevel",
    "QueryLevelError",
    "build_query",
    "keys_at",
    "locate_instances",
    "query_from_identifier",
    "run_query",
]
