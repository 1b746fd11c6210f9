"""Running a Query against the index: one response identifier per match (PS3.4 C.4.1.2.3,
PS3.18 10.6.3).

The index is read in pages of `PAGE_SIZE` entities: one SQL statement selects a page of
matches with every index column of the level and above, and at most one statement per page
computes each requested count, Modalities in Study, and the representative files. Between
pages no connection is held, so a consumer that stops iterating (C-CANCEL) stops the work.
Pages follow each other by keyset (the sort columns of the last row), so a study stored
meanwhile neither repeats nor hides a match.

Order: patients as created; studies newest Study Date first; series by study, then Series
Number; instances by series, then Instance Number.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.orm import aliased

from dicom_node.index import Index
from dicom_node.index.schema import InstanceRow, PatientRow, SeriesRow, StudyRow
from dicom_node.query.keys import Computed, IndexKey, answering_level, index_key, unique_key_tags
from dicom_node.query.matching import matches_value, matching_clause
from dicom_node.query.model import Query, QueryKey, QueryLevel
from dicom_node.storage import StorageArea

__all__ = ["PAGE_SIZE", "run_query"]

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
INSTANCE_AVAILABILITY = "ONLINE"  # every stored instance is on the node's disk (PS3.4 C.4.1.1.3.1)
RETRIEVE_AE_TITLE = 0x00080054  # filled by the C-FIND SCP, never from a stored file
QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
_UNSET = 2**31 - 1  # sorts unnumbered series/instances last
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}

_PK = {
    QueryLevel.PATIENT: PatientRow.id,
    QueryLevel.STUDY: StudyRow.id,
    QueryLevel.SERIES: SeriesRow.id,
    QueryLevel.IMAGE: InstanceRow.id,
}
_PK_LABEL = {
    QueryLevel.PATIENT: "patient_pk",
    QueryLevel.STUDY: "study_pk",
    QueryLevel.SERIES: "series_pk",
    QueryLevel.IMAGE: "instance_pk",
}
# Which level's entity a computed count belongs to.
_COUNT_LEVEL = {
    Computed.PATIENT_STUDIES: QueryLevel.PATIENT,
    Computed.PATIENT_SERIES: QueryLevel.PATIENT,
    Computed.PATIENT_INSTANCES: QueryLevel.PATIENT,
    Computed.STUDY_SERIES: QueryLevel.STUDY,
    Computed.STUDY_INSTANCES: QueryLevel.STUDY,
    Computed.SERIES_INSTANCES: QueryLevel.SERIES,
}


def _label(tag: int) -> str:
    return f"k{tag:08x}"


def _levels_to(level: QueryLevel) -> list[QueryLevel]:
    return [upper for upper in QueryLevel if upper.depth <= level.depth]


def _from_clause(level: QueryLevel) -> Any:
    joined: Any = PatientRow.__table__
    if level.depth >= QueryLevel.STUDY.depth:
        joined = StudyRow.__table__.join(joined, StudyRow.patient_pk == PatientRow.id)
    if level.depth >= QueryLevel.SERIES.depth:
        joined = SeriesRow.__table__.join(joined, SeriesRow.study_pk == StudyRow.id)
    if level.depth >= QueryLevel.IMAGE.depth:
        joined = InstanceRow.__table__.join(joined, InstanceRow.series_pk == SeriesRow.id)
    return joined


def _order(level: QueryLevel) -> list[tuple[Any, bool]]:
    """(expression, descending) pairs, ending with the primary key: a total order."""
    if level is QueryLevel.PATIENT:
        return [(PatientRow.id, False)]
    if level is QueryLevel.STUDY:
        return [(StudyRow.study_date, True), (StudyRow.id, True)]
    if level is QueryLevel.SERIES:
        return [
            (SeriesRow.study_pk, False),
            (func.coalesce(SeriesRow.series_number, _UNSET), False),
            (SeriesRow.id, False),
        ]
    return [
        (InstanceRow.series_pk, False),
        (func.coalesce(InstanceRow.instance_number, _UNSET), False),
        (InstanceRow.id, False),
    ]


def _after(order: list[tuple[Any, bool]], last: Sequence[Any]) -> Any:
    """Keyset condition: rows strictly after `last` in `order`."""
    alternatives = []
    for position, (expression, descending) in enumerate(order):
        equal = [order[before][0] == last[before] for before in range(position)]
        beyond = expression < last[position] if descending else expression > last[position]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


@dataclass(frozen=True)
class _Plan:
    query: Query
    statement: Select[*tuple[Any, ...]]
    order: list[tuple[Any, bool]]
    index_keys: dict[int, IndexKey]  # requested keys answered by the index
    file_tags: tuple[int, ...]  # requested keys read from the representative file
    unique_tags: tuple[int, ...]


def _answered_by_index(query: Query, key: IndexKey) -> bool:
    answering = answering_level(key, query.model)
    return answering is None or answering.depth <= query.level.depth


def _plan(query: Query, dialect: str) -> _Plan:
    level = query.level
    columns: list[Any] = [_PK[upper].label(_PK_LABEL[upper]) for upper in _levels_to(level)]
    for tag in {*(requested.tag for requested in query.keys), *unique_key_tags(level, query.model)}:
        answered = index_key(tag)
        if (
            answered is not None
            and answered.column is not None
            and _answered_by_index(query, answered)
        ):
            columns.append(answered.column.label(_label(tag)))
    if level is QueryLevel.IMAGE:
        columns.append(InstanceRow.file_path.label("file_path"))
    order = _order(level)
    columns += [expression.label(f"o{n}") for n, (expression, _) in enumerate(order)]
    statement = select(*columns).select_from(_from_clause(level))
    for key in query.matching_keys:
        statement = statement.where(_key_clause(key, dialect))
    statement = statement.order_by(
        *(expression.desc() if descending else expression.asc() for expression, descending in order)
    )
    index_keys: dict[int, IndexKey] = {}
    file_tags: list[int] = []
    for key in query.keys:
        known = index_key(key.tag)
        if known is not None and _answered_by_index(query, known):
            index_keys[key.tag] = known
        elif key.tag != RETRIEVE_AE_TITLE and (known is None or known.computed is None):
            file_tags.append(key.tag)
    return _Plan(
        query=query,
        statement=statement,
        order=order,
        index_keys=index_keys,
        file_tags=tuple(file_tags),
        unique_tags=unique_key_tags(level, query.model),
    )


def _key_clause(key: QueryKey, dialect: str) -> Any:
    known = index_key(key.tag)
    assert known is not None, "identifier checks admit index keys only"
    if known.column is not None:
        return matching_clause(key.matching, known.column, known.vr, dialect)
    if known.computed is Computed.MODALITIES_IN_STUDY:
        series = aliased(SeriesRow)
        return (
            select(series.id)
            .where(
                series.study_pk == StudyRow.id,
                matching_clause(key.matching, series.modality, "CS", dialect),
            )
            .exists()
        )
    if known.computed is Computed.INSTANCE_AVAILABILITY:
        return matches_value(key.matching, INSTANCE_AVAILABILITY)
    raise AssertionError(f"no matching for {known.keyword}")


@dataclass
class _PageExtras:
    counts: dict[Computed, dict[int, int]] = field(default_factory=dict)
    modalities: dict[int, list[str]] = field(default_factory=dict)
    files: dict[int, str] = field(default_factory=dict)  # entity pk -> representative file


def _count_statement(kind: Computed, pks: list[int]) -> Select[*tuple[Any, ...]]:
    if kind is Computed.PATIENT_STUDIES:
        group, joined = StudyRow.patient_pk, _from_clause(QueryLevel.STUDY)
    elif kind is Computed.PATIENT_SERIES:
        group, joined = StudyRow.patient_pk, _from_clause(QueryLevel.SERIES)
    elif kind is Computed.PATIENT_INSTANCES:
        group, joined = StudyRow.patient_pk, _from_clause(QueryLevel.IMAGE)
    elif kind is Computed.STUDY_SERIES:
        group, joined = SeriesRow.study_pk, SeriesRow.__table__
    elif kind is Computed.STUDY_INSTANCES:
        group = SeriesRow.study_pk
        joined = InstanceRow.__table__.join(SeriesRow, InstanceRow.series_pk == SeriesRow.id)
    else:
        group, joined = InstanceRow.series_pk, InstanceRow.__table__
    return select(group, func.count()).select_from(joined).where(group.in_(pks)).group_by(group)


def _representative_statement(level: QueryLevel, pks: list[int]) -> Select[*tuple[Any, ...]]:
    """The first stored instance of each entity (lowest row id) and its file."""
    group = {
        QueryLevel.PATIENT: StudyRow.patient_pk,
        QueryLevel.STUDY: SeriesRow.study_pk,
        QueryLevel.SERIES: InstanceRow.series_pk,
    }[level]
    first = (
        select(group.label("pk"), func.min(InstanceRow.id).label("instance_pk"))
        .select_from(_from_clause(QueryLevel.IMAGE))
        .where(group.in_(pks))
        .group_by(group)
        .subquery()
    )
    return select(first.c.pk, InstanceRow.file_path).join_from(
        first, InstanceRow, InstanceRow.id == first.c.instance_pk
    )


def _page_extras(connection: Any, plan: _Plan, rows: Sequence[Row[Any]]) -> _PageExtras:
    extras = _PageExtras()
    computed = {key.computed for key in plan.index_keys.values() if key.computed is not None}
    for kind in computed:
        count_level = _COUNT_LEVEL.get(kind)
        if count_level is None:
            continue
        pks = sorted({getattr(row, _PK_LABEL[count_level]) for row in rows})
        extras.counts[kind] = dict(connection.execute(_count_statement(kind, pks)).all())
    if Computed.MODALITIES_IN_STUDY in computed:
        pks = sorted({row.study_pk for row in rows})
        statement = (
            select(SeriesRow.study_pk, SeriesRow.modality)
            .where(SeriesRow.study_pk.in_(pks), SeriesRow.modality != "")
            .distinct()
            .order_by(SeriesRow.study_pk, SeriesRow.modality)
        )
        for study_pk, modality in connection.execute(statement):
            extras.modalities.setdefault(study_pk, []).append(modality)
    level = plan.query.level
    if plan.file_tags and level is not QueryLevel.IMAGE:
        pks = [getattr(row, _PK_LABEL[level]) for row in rows]
        statement = _representative_statement(level, pks)
        extras.files = dict(connection.execute(statement).all())
    return extras


def run_query(
    index: Index,
    area: StorageArea,
    query: Query,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[Dataset]:
    """Yield one response identifier per match, at most `limit` after skipping `offset`:
    the requested keys (empty when unknown), QueryRetrieveLevel, the unique keys of the level
    and above, and SpecificCharacterSet ISO_IR 192 when a returned text is not ASCII."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("limit and offset must not be negative")
    plan = _plan(query, index.dialect)
    returned = 0
    last: tuple[Any, ...] | None = None
    while limit is None or returned < limit:
        size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - returned)
        statement = plan.statement.limit(size)
        if last is None:
            statement = statement.offset(offset)
        else:
            statement = statement.where(_after(plan.order, last))
        with index.read_connection() as connection:
            rows = connection.execute(statement).all()
            extras = _page_extras(connection, plan, rows)
        for row in rows:
            yield _response(plan, row, extras, area)
        returned += len(rows)
        if len(rows) < size:
            return
        last = tuple(getattr(rows[-1], f"o{n}") for n in range(len(plan.order)))


def _element(tag: int, vr: str, value: Any) -> DataElement:
    if value is None:
        value = empty_value_for_VR(vr)
    return DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


def _index_value(plan: _Plan, key: IndexKey, row: Row[Any], extras: _PageExtras) -> Any:
    if key.column is not None:
        value = getattr(row, _label(key.tag))
        return None if value == "" else value
    if key.computed is Computed.MODALITIES_IN_STUDY:
        return extras.modalities.get(row.study_pk) or None
    if key.computed is Computed.INSTANCE_AVAILABILITY:
        return INSTANCE_AVAILABILITY
    assert key.computed is not None
    count_level = _COUNT_LEVEL[key.computed]
    return extras.counts[key.computed].get(getattr(row, _PK_LABEL[count_level]), 0)


def _response(plan: _Plan, row: Row[Any], extras: _PageExtras, area: StorageArea) -> Dataset:
    query = plan.query
    response = Dataset()
    stored: Dataset | None = None
    if plan.file_tags:
        path = (
            row.file_path
            if query.level is QueryLevel.IMAGE
            else extras.files.get(getattr(row, _PK_LABEL[query.level]))
        )
        stored = _read_stored(area, path, plan.file_tags) if path else None
    for key in query.keys:
        known = plan.index_keys.get(key.tag)
        if known is not None:
            response.add(_element(key.tag, known.vr, _index_value(plan, known, row, extras)))
        elif stored is not None and key.tag in stored:
            response.add(_copied(stored[key.tag]))
        else:
            response.add(_element(key.tag, key.vr, None))
    for tag in plan.unique_tags:
        if tag not in response:
            known = index_key(tag)
            assert known is not None
            response.add(_element(tag, known.vr, _index_value(plan, known, row, extras)))
    response.add(_element(QUERY_RETRIEVE_LEVEL, "CS", query.level.value))
    if _has_non_ascii(response):
        response.add(_element(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192"))
    return response


def _read_stored(area: StorageArea, path: str, tags: tuple[int, ...]) -> Dataset | None:
    """The requested attributes of a stored file, reading no further than the last of them."""
    last = max(tags)
    try:
        with area.absolute(path).open("rb") as file:
            dataset = read_partial(
                file, stop_when=lambda tag, _vr, _length: tag > last, specific_tags=list(tags)
            )
            list(dataset.iterall())  # decode now, in the file's character set
            return dataset
    except (OSError, InvalidDicomError, ValueError, EOFError, KeyError, struct.error) as exc:
        logger.warning("stored file %s unreadable for a query: %s", path, type(exc).__name__)
        return None


def _copied(element: DataElement) -> DataElement:
    """A stored element for a response; person names as plain text, so they re-encode in the
    response's character set."""
    if element.VR == "PN" and element.value is not None:
        value = element.value
        text: Any = [str(item) for item in value] if element.VM > 1 else str(value)
        return _element(int(element.tag), "PN", text)
    return element


def _has_non_ascii(dataset: Dataset) -> bool:
    for element in dataset.iterall():
        if element.VR not in _TEXT_VRS or element.value is None:
            continue
        values = element.value if element.VM > 1 else [element.value]
        if any(not str(value).isascii() for value in values):
            return True
    return False
