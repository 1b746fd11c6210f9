"""WADO-RS, the Studies Retrieve transaction (PS3.18 10.4): instances, metadata, bulk data
and frames. Rendered and thumbnail resources are in dicomweb.rendered.

Instances go out as stored (the PS3.10 file the node wrote: its File Meta Information, then
the dataset exactly as received), streamed from disk, unless the client accepts only
explicit VR little endian (dicomweb.accept). Every UID in the path is checked
(dicom_node.uids.is_valid_uid) before the index or the file system is touched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from dicom_node.dicomweb.accept import (
    OCTET_STREAM,
    FrameEncoding,
    MediaRange,
    choose_frame_encoding,
    choose_instance_syntax,
    not_acceptable,
    parse_accept,
    wants,
)
from dicom_node.dicomweb.context import DicomWebContext
from dicom_node.dicomweb.frames import (
    FrameSource,
    decoded_frame,
    parse_frame_list,
)
from dicom_node.dicomweb.metadata import bulk_value, instance_metadata, parse_tag_path
from dicom_node.dicomweb.multipart import closing_delimiter, new_boundary, part_header
from dicom_node.dicomweb.rendered import rendered_routes
from dicom_node.dicomweb.retrieval import Retriever
from dicom_node.dicomweb.transcoding import TranscodingError, to_explicit_little_endian
from dicom_node.dicomweb.urls import service_base
from dicom_node.http.problems import ProblemError
from dicom_node.query.locate import InstanceLocation

__all__ = ["wado_routes"]

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
_CHUNK = 1024 * 1024
_WHOLE_FILE = 8 * 1024 * 1024  # files up to this size go out in one piece


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            yield chunk


def _instances_response(
    retriever: Retriever, locations: Sequence[InstanceLocation], ranges: Sequence[MediaRange]
) -> Response:
    """PS3.18 10.4.1.1.1: the instances, multipart/related; type="application/dicom"."""
    choices: list[str] = []
    multipart = True
    for location in locations:
        choice = choose_instance_syntax(
            ranges, location.transfer_syntax_uid, single_part=len(locations) == 1
        )
        if choice is None:
            raise not_acceptable(
                "instances are available as stored or in explicit VR little endian"
            )
        choices.append(choice[0])
        multipart = choice[1]
    paths = [retriever.path(location) for location in locations]
    if not multipart:
        return _single_instance(paths[0], locations[0], choices[0])
    boundary = new_boundary()
    headers = [
        part_header(boundary, f"application/dicom; transfer-syntax={syntax}", first=position == 0)
        for position, syntax in enumerate(choices)
    ]
    as_stored = [
        syntax == location.transfer_syntax_uid
        for syntax, location in zip(choices, locations, strict=True)
    ]

    def body() -> Iterator[bytes]:
        for path, header, stored in zip(paths, headers, as_stored, strict=True):
            if not stored:
                yield header + _converted(path)
            elif os.path.getsize(path) <= _WHOLE_FILE:
                yield header + path.read_bytes()
            else:
                yield header
                yield from _read_file(path)
        yield closing_delimiter(boundary)

    response_headers = {}
    if all(as_stored):
        length = sum(len(h) for h in headers) + len(closing_delimiter(boundary))
        length += sum(os.path.getsize(path) for path in paths)
        response_headers["Content-Length"] = str(length)
    return StreamingResponse(
        body(),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        headers=response_headers,
    )


def _converted(path: Path) -> bytes:
    try:
        return to_explicit_little_endian(path)
    except TranscodingError:
        # The response has started: all that can be done is to cut it short.
        logger.exception("WADO-RS conversion to explicit VR little endian failed")
        raise


def _single_instance(path: Path, location: InstanceLocation, syntax: str) -> Response:
    if syntax == location.transfer_syntax_uid:
        data = path.read_bytes()
    else:
        try:
            data = to_explicit_little_endian(path)
        except TranscodingError as exc:
            raise not_acceptable(str(exc)) from exc
    return Response(data, media_type=f"application/dicom; transfer-syntax={syntax}")


def _metadata_response(
    retriever: Retriever, locations: Sequence[InstanceLocation], request: Request
) -> JSONResponse:
    """PS3.18 10.4.1.1.2: a DICOM JSON array, one object per instance."""
    wants(parse_accept(request.headers.get("accept")), DICOM_JSON, "application/json")
    base = service_base(request)
    items: list[dict[str, Any]] = []
    for location in locations:
        url = (
            f"{base}/studies/{location.study_instance_uid}/series/"
            f"{location.series_instance_uid}/instances/{location.sop_instance_uid}"
        )
        items.append(instance_metadata(retriever.path(location), url))
    return JSONResponse(items, media_type=DICOM_JSON)


def _parts_response(
    parts: Callable[[], Iterator[bytes]], part_type: str, content_type: str, count: int
) -> Response:
    """multipart/related with `count` parts made lazily by `parts` (the first one before the
    response starts, so that its failure is still an HTTP error)."""
    boundary = new_boundary()
    produced = parts()
    first = next(produced)

    def body() -> Iterator[bytes]:
        yield part_header(boundary, content_type, first=True) + first
        for _ in range(count - 1):
            yield part_header(boundary, content_type, first=False) + next(produced)
        yield closing_delimiter(boundary)

    return StreamingResponse(
        body(), media_type=f'multipart/related; type="{part_type}"; boundary={boundary}'
    )


def _frames_response(
    source: FrameSource, numbers: Sequence[int], encoding: FrameEncoding
) -> Response:
    decode = encoding.transfer_syntax != str(source.transfer_syntax_uid) and source.encapsulated

    def frames() -> Iterator[bytes]:
        for number in numbers:
            try:
                yield decoded_frame(source, number) if decode else source.stored_frame(number)
            except IndexError as exc:
                raise ProblemError(
                    404, "Frame not found", f"frame {number} does not exist"
                ) from exc
            except Exception as exc:
                logger.exception("frame %d could not be read or decoded", number)
                raise ProblemError(500, "Frame unavailable", "the frame did not decode") from exc

    content_type = f"{encoding.part_type}; transfer-syntax={encoding.transfer_syntax}"
    return _parts_response(frames, encoding.part_type, content_type, len(numbers))


def _check_frame_numbers(text: str, source: FrameSource) -> list[int]:
    try:
        numbers = parse_frame_list(text)
    except ValueError as exc:
        raise ProblemError(400, "Invalid frame list", str(exc)) from exc
    beyond = [number for number in numbers if number > source.number_of_frames]
    if beyond:
        raise ProblemError(
            404, "Frame not found", f"the instance has {source.number_of_frames} frame(s)"
        )
    return numbers


def _bulk_data_response(
    retriever: Retriever, location: InstanceLocation, tag_path: str, request: Request
) -> Response:
    """PS3.18 10.4.1.1.5 bulk data: one octet-stream part (compressed Pixel Data: its frames)."""
    try:
        path = parse_tag_path(tag_path)
    except ValueError as exc:
        raise ProblemError(400, "Invalid bulk data path", str(exc)) from exc
    ranges = parse_accept(request.headers.get("accept"))
    if path == [0x7FE00010]:
        source = retriever.frame_source(location)
        if source.encapsulated:
            as_stored = [
                MediaRange(r.media, r.part_type, r.transfer_syntax or "*", r.quality)
                for r in ranges
            ]
            encoding = choose_frame_encoding(as_stored, str(source.transfer_syntax_uid))
            if encoding is None:
                raise not_acceptable("compressed Pixel Data is available as stored or decoded")
            numbers = list(range(1, source.number_of_frames + 1))
            return _frames_response(source, numbers, encoding)
        value = source.native_value()
    else:
        found = bulk_value(retriever.path(location), path)
        if found is None:
            raise ProblemError(404, "Bulk data not found", "no binary element at that path")
        value = found[1]
    media = wants(ranges, "multipart/related", OCTET_STREAM)
    if media == OCTET_STREAM and not any(r.media == "multipart/related" for r in ranges):
        return Response(value, media_type=OCTET_STREAM)
    return _parts_response(lambda: iter([value]), OCTET_STREAM, OCTET_STREAM, 1)


def wado_routes(context: DicomWebContext) -> APIRouter:
    router = APIRouter()
    retriever = Retriever(context)

    def accept(request: Request) -> list[MediaRange]:
        return parse_accept(request.headers.get("accept"))

    @router.get("/studies/{study}")
    def retrieve_study(study: str, request: Request) -> Response:
        return _instances_response(retriever, retriever.locate(study), accept(request))

    @router.get("/studies/{study}/series/{series}")
    def retrieve_series(study: str, series: str, request: Request) -> Response:
        return _instances_response(retriever, retriever.locate(study, series), accept(request))

    @router.get("/studies/{study}/series/{series}/instances/{instance}")
    def retrieve_instance(study: str, series: str, instance: str, request: Request) -> Response:
        found = retriever.locate(study, series, instance)
        return _instances_response(retriever, found, accept(request))

    @router.get("/studies/{study}/metadata")
    def study_metadata(study: str, request: Request) -> JSONResponse:
        return _metadata_response(retriever, retriever.locate(study), request)

    @router.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(study: str, series: str, request: Request) -> JSONResponse:
        return _metadata_response(retriever, retriever.locate(study, series), request)

    @router.get("/studies/{study}/series/{series}/instances/{instance}/metadata")
    def instance_metadata_route(
        study: str, series: str, instance: str, request: Request
    ) -> JSONResponse:
        found = retriever.locate(study, series, instance)
        return _metadata_response(retriever, found, request)

    @router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}")
    def retrieve_frames(
        study: str, series: str, instance: str, frames: str, request: Request
    ) -> Response:
        (location,) = retriever.locate(study, series, instance)
        source = retriever.frame_source(location)
        numbers = _check_frame_numbers(frames, source)
        encoding = choose_frame_encoding(accept(request), str(source.transfer_syntax_uid))
        if encoding is None:
            raise not_acceptable(
                "frames are available as stored or as explicit VR little endian"
                " application/octet-stream"
            )
        return _frames_response(source, numbers, encoding)

    @router.get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag_path:path}")
    def retrieve_bulk_data(
        study: str, series: str, instance: str, tag_path: str, request: Request
    ) -> Response:
        (location,) = retriever.locate(study, series, instance)
        return _bulk_data_response(retriever, location, tag_path, request)

    router.include_router(rendered_routes(retriever))
    return router
