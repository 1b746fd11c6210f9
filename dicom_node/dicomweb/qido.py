"""QIDO-RS: search for studies, series and instances (PS3.18 10.6, query syntax 8.3.4).

Resources (under /dicomweb): /studies, /studies/{study}/series, /series,
/studies/{study}/series/{series}/instances, /studies/{study}/instances, /instances.
Matching and the keys answered are those of dicom_node.query (Study Root model, relational:
any key of the level or above may be matched). Parameters:
- `{attribute}={value}`: keyword or 8 hex digit tag; lists separated by backslash, or by comma
  for UI and CS attributes (UID list, multiple value matching);
- `includefield`: repeatable, comma-separated keywords or tags, or `all`;
- `limit`, `offset`; more matches than returned -> `Warning: 299` header (PS3.18 8.3.4.4);
- `fuzzymatching=true` is not supported: literal matching is done and a `Warning: 299` says so
  (PS3.18 8.3.4.3).
The answer is a DICOM JSON array (an empty one when nothing matches), 200 OK.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from fastapi import APIRouter, Request, Response
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicom_node.dicomweb.context import DicomWebContext
from dicom_node.dicomweb.json_model import dataset_to_json
from dicom_node.http.problems import ProblemError, require_uid
from dicom_node.query import (
    InformationModel,
    QueryError,
    QueryLevel,
    build_query,
    keys_at,
    run_query,
)

__all__ = ["MAX_RESULTS", "qido_routes"]

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# Most matches one response carries; more are announced by a Warning header.
MAX_RESULTS = 10_000

_RETRIEVE_URL = 0x00081190
_NOT_RETURNED = {0x00080005, 0x00080052}  # SpecificCharacterSet, QueryRetrieveLevel
_STUDY_INSTANCE_UID = 0x0020000D
_SERIES_INSTANCE_UID = 0x0020000E


def _tags(*keywords: str) -> tuple[int, ...]:
    return tuple(int(Tag(keyword)) for keyword in keywords)


# PS3.18 tables 10.6.3-3 (study), 10.6.3-4 (series), 10.6.3-5 (instance).
_STUDY_DEFAULTS = _tags(
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
_SERIES_DEFAULTS = _tags(
    "Modality",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "RetrieveURL",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
)
_INSTANCE_DEFAULTS = _tags(
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_LIST_VRS = {"UI", "CS"}  # comma lists allowed (UIDs, codes: never contain a comma)
_ACCEPTED = {DICOM_JSON, "application/*", "*/*"}


@dataclass
class _Parameters:
    matching: dict[int, list[str]] = field(default_factory=dict)
    include: list[int] = field(default_factory=list)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "Invalid query", detail)


def _attribute(name: str) -> int:
    """The tag a parameter or includefield names (keyword or 8 hex digits, PS3.18 8.3.4.1)."""
    if "." in name:
        raise _bad_request(f"{name!r}: nested attributes (sequence matching) are not supported")
    if _HEX_TAG.fullmatch(name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    if tag is None:
        raise _bad_request(f"{name!r} is neither a DICOM keyword nor a tag")
    return int(tag)


def _vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _count(name: str, value: str) -> int:
    if not value.isdigit():
        raise _bad_request(f"{name} must be a non-negative integer")
    return int(value)


def _parameters(items: Sequence[tuple[str, str]]) -> _Parameters:
    parameters = _Parameters()
    seen: set[str] = set()
    for name, value in items:
        if name != "includefield" and name in seen:
            raise _bad_request(f"{name} is given more than once")
        seen.add(name)
        if name == "includefield":
            for part in filter(None, (part.strip() for part in value.split(","))):
                if part == "all":
                    parameters.include_all = True
                else:
                    parameters.include.append(_attribute(part))
        elif name == "limit":
            parameters.limit = _count(name, value)
        elif name == "offset":
            parameters.offset = _count(name, value)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise _bad_request("fuzzymatching must be true or false")
            parameters.fuzzy = value == "true"
        else:
            tag = _attribute(name)
            if tag in parameters.matching:
                raise _bad_request(f"{name} is given more than once")
            separators = r"[\\,]" if _vr(tag) in _LIST_VRS else r"\\"
            parameters.matching[tag] = re.split(separators, value)
    return parameters


def _media_type(accept: str | None) -> str:
    """application/dicom+json unless the client accepts only application/json (PS3.18 8.7)."""
    if accept is None or not accept.strip():
        return DICOM_JSON
    ranges = set()
    for part in accept.split(","):
        media_range, *options = (piece.strip().lower() for piece in part.split(";"))
        if not any(re.fullmatch(r"q=0(\.0*)?", option) for option in options):
            ranges.add(media_range)
    if ranges & _ACCEPTED:
        return DICOM_JSON
    if "application/json" in ranges:
        return "application/json"
    raise ProblemError(
        406, "Not Acceptable", "QIDO-RS answers application/dicom+json or application/json"
    )


def _return_tags(
    level: QueryLevel, fixed: dict[int, list[str]], parameters: _Parameters
) -> list[int]:
    """Defaults of the level, and of the levels above that the path does not fix
    (PS3.18 10.6.3.3), then includefield."""
    tags: list[int] = []
    if _STUDY_INSTANCE_UID not in fixed:
        tags += _STUDY_DEFAULTS
    if level is not QueryLevel.STUDY and _SERIES_INSTANCE_UID not in fixed:
        tags += _SERIES_DEFAULTS
    if level is QueryLevel.IMAGE:
        tags += _INSTANCE_DEFAULTS
    if parameters.include_all:
        tags += [key.tag for key in keys_at(level, InformationModel.STUDY_ROOT)]
    tags += parameters.include
    return [tag for tag in dict.fromkeys(tags) if tag not in _NOT_RETURNED]


def _retrieve_url(studies_url: str, level: QueryLevel, response: Dataset) -> str:
    url = f"{studies_url}/{response.StudyInstanceUID}"
    if level is not QueryLevel.STUDY:
        url += f"/series/{response.SeriesInstanceUID}"
    if level is QueryLevel.IMAGE:
        url += f"/instances/{response.SOPInstanceUID}"
    return url


def _search(
    context: DicomWebContext,
    request: Request,
    level: QueryLevel,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    media_type = _media_type(request.headers.get("accept"))
    fixed: dict[int, list[str]] = {}
    if study is not None:
        fixed[_STUDY_INSTANCE_UID] = [require_uid(study, "StudyInstanceUID")]
    if series is not None:
        fixed[_SERIES_INSTANCE_UID] = [require_uid(series, "SeriesInstanceUID")]
    parameters = _parameters(request.query_params.multi_items())
    if fixed.keys() & parameters.matching.keys():
        raise _bad_request("a UID given in the path cannot be a query parameter too")
    return_tags = _return_tags(level, fixed, parameters)
    engine_tags = [tag for tag in return_tags if tag != _RETRIEVE_URL]
    try:
        query = build_query(
            InformationModel.STUDY_ROOT,
            level,
            {**parameters.matching, **fixed},
            engine_tags,
        )
    except QueryError as exc:
        raise _bad_request(str(exc)) from exc
    wanted = MAX_RESULTS if parameters.limit is None else min(parameters.limit, MAX_RESULTS)
    matches = list(
        islice(
            run_query(
                context.index, context.store.area, query, limit=wanted + 1, offset=parameters.offset
            ),
            wanted + 1,
        )
    )
    warnings = []
    if len(matches) > wanted:
        matches = matches[:wanted]
        warnings.append('299 dicom-node: "There are additional results that can be requested"')
    if parameters.fuzzy:
        warnings.append(
            '299 dicom-node: "The fuzzymatching parameter is not supported.'
            ' Only literal matching has been performed."'
        )
    studies_url = str(request.url_for("qido_search_studies"))
    body = []
    for match in matches:
        for tag in _NOT_RETURNED:
            if tag in match:
                del match[tag]
        if _RETRIEVE_URL in return_tags:
            match.add_new(_RETRIEVE_URL, "UR", _retrieve_url(studies_url, level, match))
        body.append(dataset_to_json(match))
    logger.debug("QIDO-RS %s search: %d matches", level.value, len(body))
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    return Response(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        media_type=media_type,
        headers=headers,
    )


def qido_routes(context: DicomWebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/studies", name="qido_search_studies")
    def search_studies(request: Request) -> Response:
        return _search(context, request, QueryLevel.STUDY)

    @router.get("/studies/{study}/series")
    def search_study_series(request: Request, study: str) -> Response:
        return _search(context, request, QueryLevel.SERIES, study)

    @router.get("/series")
    def search_series(request: Request) -> Response:
        return _search(context, request, QueryLevel.SERIES)

    @router.get("/studies/{study}/series/{series}/instances")
    def search_series_instances(request: Request, study: str, series: str) -> Response:
        return _search(context, request, QueryLevel.IMAGE, study, series)

    @router.get("/studies/{study}/instances")
    def search_study_instances(request: Request, study: str) -> Response:
        return _search(context, request, QueryLevel.IMAGE, study)

    @router.get("/instances")
    def search_instances(request: Request) -> Response:
        return _search(context, request, QueryLevel.IMAGE)

    return router
