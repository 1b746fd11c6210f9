"""Turning a request into a Query: a C-FIND identifier (PS3.4 C.4.1.2) or QIDO-RS parameters.

Checks, each failing with QueryError naming the attribute:
- Query/Retrieve Level present and one of the model's levels (Study Root has no PATIENT level;
  PS3.4 C.6.1.1, C.6.2.1) - QueryLevelError;
- hierarchical query (C-FIND, C.4.1.2.1): the unique keys of the levels above given, each as a
  single value - QueryLevelError;
- matching only on keys of the query level or above (QueryLevelError) that the index holds
  (keys.INDEX_KEYS; matching on other attributes is refused, they may be asked for as return
  keys); counts are return keys only;
- values valid for the VR (matching.parse_matching); sequence matching is refused (an empty
  sequence, or one item of empty keys, is a return key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom_node.query.keys import Computed, answering_level, index_key, unique_key_tags
from dicom_node.query.matching import parse_matching
from dicom_node.query.model import (
    Exact,
    InformationModel,
    Query,
    QueryError,
    QueryKey,
    QueryLevel,
    QueryLevelError,
    describe_tag,
)

__all__ = ["build_query", "query_from_identifier"]

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
_NOT_KEYS = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET}
_COUNTS = {
    Computed.PATIENT_STUDIES,
    Computed.PATIENT_SERIES,
    Computed.PATIENT_INSTANCES,
    Computed.STUDY_SERIES,
    Computed.STUDY_INSTANCES,
    Computed.SERIES_INSTANCES,
}


def query_from_identifier(
    identifier: Dataset, model: InformationModel, *, relational: bool = False
) -> Query:
    """The Query a C-FIND identifier asks for (hierarchical unless `relational`, PS3.4
    C.4.1.2.1/C.4.1.2.2). Raises QueryError / QueryLevelError."""
    level_element = identifier.get(QUERY_RETRIEVE_LEVEL)
    level_text = str(level_element.value or "").strip() if level_element is not None else ""
    if not level_text:
        raise QueryLevelError(
            f"{describe_tag(QUERY_RETRIEVE_LEVEL)} is missing", (QUERY_RETRIEVE_LEVEL,)
        )
    try:
        level = QueryLevel(level_text.upper())
    except ValueError:
        raise QueryLevelError(
            f"{describe_tag(QUERY_RETRIEVE_LEVEL)} is not PATIENT, STUDY, SERIES or IMAGE",
            (QUERY_RETRIEVE_LEVEL,),
        ) from None
    requested: list[tuple[int, str, list[str]]] = []
    for element in identifier:
        tag = int(element.tag)
        if tag in _NOT_KEYS or element.tag.element == 0 or element.tag.group == 0x0002:
            continue
        requested.append((tag, str(element.VR), _element_values(element)))
    return _build(model, level, requested, relational=relational)


def build_query(
    model: InformationModel,
    level: QueryLevel,
    matching: Mapping[int, Sequence[str]],
    return_tags: Iterable[int],
    *,
    relational: bool = True,
) -> Query:
    """A Query from matching values by tag (each already split into list items) and tags to
    return (QIDO-RS, PS3.18 8.3.4: relational unless told otherwise)."""
    requested = [(tag, _dictionary_vr(tag), list(values)) for tag, values in matching.items()]
    requested += [(tag, _dictionary_vr(tag), []) for tag in return_tags if tag not in matching]
    return _build(model, level, requested, relational=relational)


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _element_values(element: DataElement) -> list[str]:
    tag = int(element.tag)
    value = element.value
    if element.VR == "SQ":
        if any(any(not item.is_empty for item in dataset) for dataset in value or []):
            raise QueryError(
                f"{describe_tag(tag)}: sequence matching is not supported; send the sequence"
                " empty to have it returned",
                (tag,),
            )
        return []
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, bytes | bytearray):
        raise QueryError(f"{describe_tag(tag)}: binary values cannot be matched", (tag,))
    if isinstance(value, MultiValue | list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def _build(
    model: InformationModel,
    level: QueryLevel,
    requested: Sequence[tuple[int, str, list[str]]],
    *,
    relational: bool,
) -> Query:
    if level not in model.levels:
        raise QueryLevelError(
            f"{describe_tag(QUERY_RETRIEVE_LEVEL)} {level.value} is not a level of the"
            f" {model.value.replace('_', ' ')} information model",
            (QUERY_RETRIEVE_LEVEL,),
        )
    keys = {tag: _query_key(model, level, tag, vr, values) for tag, vr, values in requested}
    if not relational:
        _check_hierarchy(model, level, keys)
    return Query(model=model, level=level, keys=tuple(keys[tag] for tag in sorted(keys)))


def _query_key(
    model: InformationModel, level: QueryLevel, tag: int, vr: str, values: list[str]
) -> QueryKey:
    known = index_key(tag)
    if known is not None:
        vr = known.vr
    matching = parse_matching(tag, vr, values)
    if matching.is_universal:
        return QueryKey(tag=tag, vr=vr)
    name = describe_tag(tag)
    if known is None:
        raise QueryError(
            f"matching on {name} is not supported (the index does not hold it);"
            " send it empty to have it returned",
            (tag,),
        )
    if known.computed in _COUNTS:
        raise QueryError(f"{name} is a return key only; send it empty", (tag,))
    answering = answering_level(known, model)
    if answering is not None and answering.depth > level.depth:
        raise QueryLevelError(
            f"{name} is a {answering.value} level key and cannot be matched in a"
            f" {level.value} level query",
            (tag,),
        )
    return QueryKey(tag=tag, vr=vr, matching=matching)


def _check_hierarchy(model: InformationModel, level: QueryLevel, keys: dict[int, QueryKey]) -> None:
    """PS3.4 C.4.1.2.1: each unique key above the query level is a single value."""
    for tag in unique_key_tags(level, model)[:-1]:
        key = keys.get(tag)
        terms = key.matching.terms if key is not None else ()
        if len(terms) != 1 or not isinstance(terms[0], Exact):
            raise QueryLevelError(
                f"{describe_tag(tag)} must be given as a single value in a {level.value} level"
                " query (hierarchical query, PS3.4 C.4.1.2.1)",
                (tag,),
            )
