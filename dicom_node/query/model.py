"""What a query is: information model, level, keys and their matching (PS3.4 C.2.2, C.6).

A `Query` is valid the moment it exists: `query_from_identifier` (C-FIND) and `build_query`
(QIDO-RS) check everything PS3.4 C.2.2.1 and C.4.1.2 ask for before one is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import keyword_for_tag

__all__ = [
    "Exact",
    "InformationModel",
    "Matching",
    "Query",
    "QueryError",
    "QueryKey",
    "QueryLevel",
    "QueryLevelError",
    "Range",
    "Term",
    "Wildcard",
    "describe_tag",
]


class QueryLevel(StrEnum):
    """Query/Retrieve Level (0008,0052) values (PS3.4 C.6)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        return _DEPTH[self]


_DEPTH = {QueryLevel.PATIENT: 0, QueryLevel.STUDY: 1, QueryLevel.SERIES: 2, QueryLevel.IMAGE: 3}


class InformationModel(StrEnum):
    """The Q/R information models answered (PS3.4 C.6.1 Patient Root, C.6.2 Study Root)."""

    PATIENT_ROOT = "patient_root"
    STUDY_ROOT = "study_root"

    @property
    def levels(self) -> tuple[QueryLevel, ...]:
        if self is InformationModel.PATIENT_ROOT:
            return (QueryLevel.PATIENT, QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE)
        return (QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE)


def describe_tag(tag: int) -> str:
    """`(gggg,eeee) Keyword`: how errors name an attribute (never its value: it may be PHI)."""
    keyword = keyword_for_tag(tag)
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{text} {keyword}" if keyword else text


class QueryError(ValueError):
    """The identifier cannot be processed (C-FIND: 0xA900 or 0xC000-range with this text as
    ErrorComment; QIDO-RS: 400). `offending_tags` names the attributes at fault, if any."""

    def __init__(self, message: str, offending_tags: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.offending_tags = offending_tags


class QueryLevelError(QueryError):
    """QueryRetrieveLevel missing or not valid for the model, or a key at a level the query
    may not use (PS3.4 C.6.1.1, C.6.2.1, C.4.1.2.1)."""


@dataclass(frozen=True)
class Exact:
    """Single value matching (PS3.4 C.2.2.2.1); for UIDs one item of a list (C.2.2.2.2)."""

    value: str


@dataclass(frozen=True)
class Wildcard:
    """Wild card matching with `*` and `?` (PS3.4 C.2.2.2.4)."""

    pattern: str


@dataclass(frozen=True)
class Range:
    """Range matching of DA/TM/DT (PS3.4 C.2.2.2.5); an empty bound is open."""

    lower: str
    upper: str


Term = Exact | Wildcard | Range


@dataclass(frozen=True)
class Matching:
    """The terms an entity's value must match one of; no terms is universal matching
    (PS3.4 C.2.2.2.3). Several terms come from a UID list (C.2.2.2.2) or multiple value
    matching (C.2.2.2.8)."""

    terms: tuple[Term, ...] = ()

    @property
    def is_universal(self) -> bool:
        return not self.terms


@dataclass(frozen=True)
class QueryKey:
    """One key of the request: returned always, matched unless its matching is universal."""

    tag: int
    vr: str
    matching: Matching = Matching()


@dataclass(frozen=True)
class Query:
    model: InformationModel
    level: QueryLevel
    # Every requested key (matching and return keys), in tag order, without
    # QueryRetrieveLevel and SpecificCharacterSet.
    keys: tuple[QueryKey, ...]

    @property
    def matching_keys(self) -> tuple[QueryKey, ...]:
        return tuple(key for key in self.keys if not key.matching.is_universal)

    def key(self, tag: int) -> QueryKey | None:
        return next((key for key in self.keys if key.tag == tag), None)
