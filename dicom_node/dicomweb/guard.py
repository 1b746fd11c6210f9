"""The answer for any /dicomweb path no resource matched (PS3.18 8.5 status codes).

A UID with `../` or an encoded slash in it (`..%2F`) does not match a resource's path pattern
once decoded, so without this the client would get a plain 404; path traversal attempts get a
400 problem instead, anything else a 404 problem. Nothing here touches the index or the disk.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dicom_node.http.problems import problem_response

__all__ = ["unmatched_routes"]

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _is_traversal(request: Request) -> bool:
    raw = request.scope.get("raw_path") or request.url.path.encode("utf-8")
    lowered = bytes(raw).split(b"?", 1)[0].lower()
    segments = request.url.path.split("/")
    return (
        b"%2f" in lowered
        or b"%5c" in lowered
        or b"\\" in lowered
        or any(segment in (".", "..") for segment in segments)
    )


def unmatched_routes() -> APIRouter:
    router = APIRouter()

    @router.api_route("/{rest:path}", methods=_METHODS, include_in_schema=False)
    def unmatched(rest: str, request: Request) -> JSONResponse:
        if _is_traversal(request):
            return problem_response(
                400, "Invalid path", "a path segment is not a valid DICOM UID or resource name"
            )
        return problem_response(404, "Not found", "no DICOMweb resource at this path")

    return router
