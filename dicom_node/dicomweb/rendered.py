"""Rendered and thumbnail resources of WADO-RS (PS3.18 10.4.1.1.3 and 10.4.1.1.6).

- `.../instances/{i}/rendered`: the instance's first frame; `.../frames/{n}/rendered`: frame n
  (one frame; image/jpeg and image/png are single-frame media types).
- `/studies/{s}/thumbnail`, `.../series/{se}/thumbnail`, `.../instances/{i}/thumbnail`,
  `.../frames/{n}/thumbnail`: the middle frame of the middle instance of the first image
  series (or the named one), fitted into 128 x 128 unless `viewport` says otherwise.
Media types image/jpeg (the default) and image/png; query parameters `window`, `viewport`,
`quality` (PS3.18 8.3.5.1). A resource without pixel data has no image rendering: 406.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dicom_node.dicomweb.accept import not_acceptable, parse_accept, wants
from dicom_node.dicomweb.frames import FrameSource, parse_frame_list
from dicom_node.dicomweb.rendering import THUMBNAIL_SIZE, RenderOptions, parse_options, render_frame
from dicom_node.dicomweb.retrieval import Retriever
from dicom_node.http.problems import ProblemError
from dicom_node.query.locate import InstanceLocation

__all__ = ["rendered_routes"]

logger = logging.getLogger(__name__)

# SOP Classes without pixel data (PS3.4 B.5): SR, presentation states, encapsulated documents,
# RT structure sets and plans. Skipped when choosing what a study or series thumbnail shows.
_NOT_IMAGES = (
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.104.",
    "1.2.840.10008.5.1.4.1.1.481.3",
    "1.2.840.10008.5.1.4.1.1.481.5",
)


def _options(request: Request, *, thumbnail: bool) -> RenderOptions:
    media = wants(parse_accept(request.headers.get("accept")), "image/jpeg", "image/png")
    query = request.query_params
    try:
        options = parse_options(
            media, query.get("window"), query.get("viewport"), query.get("quality")
        )
    except ValueError as exc:
        raise ProblemError(400, "Invalid rendering parameter", str(exc)) from exc
    if thumbnail and options.viewport is None:
        options = RenderOptions(
            options.media_type, options.window, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), options.quality
        )
    return options


def _single_frame(text: str) -> int:
    try:
        numbers = parse_frame_list(text)
    except ValueError as exc:
        raise ProblemError(400, "Invalid frame list", str(exc)) from exc
    if len(numbers) != 1:
        raise ProblemError(400, "One frame only", "image/jpeg and image/png show one frame")
    return numbers[0]


def _render(source: FrameSource, number: int, options: RenderOptions) -> Response:
    if number > source.number_of_frames:
        raise ProblemError(404, "Frame not found", f"the instance has {source.number_of_frames}")
    try:
        image = render_frame(source, number, options)
    except Exception as exc:  # pydicom decoders and numpy raise many types
        logger.exception("rendering a frame failed")
        raise ProblemError(500, "Rendering failed", "the frame did not decode") from exc
    return Response(image, media_type=options.media_type)


def _image_source(retriever: Retriever, location: InstanceLocation) -> FrameSource:
    try:
        return retriever.frame_source(location)
    except ProblemError as exc:
        if exc.status == 404:
            raise not_acceptable("the instance has no pixel data to render") from exc
        raise


def _representative(locations: Sequence[InstanceLocation]) -> InstanceLocation:
    """The middle instance of the first series that has frames (locations come ordered)."""
    by_series: dict[str, list[InstanceLocation]] = {}
    for location in locations:
        by_series.setdefault(location.series_instance_uid, []).append(location)
    for members in by_series.values():
        images = [m for m in members if not m.sop_class_uid.startswith(_NOT_IMAGES)]
        if images:
            return images[len(images) // 2]
    return locations[0]


def rendered_routes(retriever: Retriever) -> APIRouter:
    router = APIRouter()
    instance_path = "/studies/{study}/series/{series}/instances/{instance}"

    @router.get(instance_path + "/rendered")
    def rendered_instance(study: str, series: str, instance: str, request: Request) -> Response:
        options = _options(request, thumbnail=False)
        (location,) = retriever.locate(study, series, instance)
        return _render(_image_source(retriever, location), 1, options)

    @router.get(instance_path + "/frames/{frames}/rendered")
    def rendered_frame(
        study: str, series: str, instance: str, frames: str, request: Request
    ) -> Response:
        options = _options(request, thumbnail=False)
        (location,) = retriever.locate(study, series, instance)
        return _render(_image_source(retriever, location), _single_frame(frames), options)

    @router.get(instance_path + "/frames/{frames}/thumbnail")
    def frame_thumbnail(
        study: str, series: str, instance: str, frames: str, request: Request
    ) -> Response:
        options = _options(request, thumbnail=True)
        (location,) = retriever.locate(study, series, instance)
        return _render(_image_source(retriever, location), _single_frame(frames), options)

    @router.get(instance_path + "/thumbnail")
    def instance_thumbnail(study: str, series: str, instance: str, request: Request) -> Response:
        options = _options(request, thumbnail=True)
        (location,) = retriever.locate(study, series, instance)
        source = _image_source(retriever, location)
        return _render(source, (source.number_of_frames + 1) // 2, options)

    @router.get("/studies/{study}/series/{series}/thumbnail")
    def series_thumbnail(study: str, series: str, request: Request) -> Response:
        options = _options(request, thumbnail=True)
        location = _representative(retriever.locate(study, series))
        source = _image_source(retriever, location)
        return _render(source, (source.number_of_frames + 1) // 2, options)

    @router.get("/studies/{study}/thumbnail")
    def study_thumbnail(study: str, request: Request) -> Response:
        options = _options(request, thumbnail=True)
        location = _representative(retriever.locate(study))
        source = _image_source(retriever, location)
        return _render(source, (source.number_of_frames + 1) // 2, options)

    return router
