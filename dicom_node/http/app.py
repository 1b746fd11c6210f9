"""The HTTP application: admin API under /api (JSON); errors are RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dicom_node import __version__
from dicom_node.index import Index
from dicom_node.series import series_state
from dicom_node.uids import is_valid_uid

__all__ = ["ApiContext", "create_app"]

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ApiContext:
    index: Index
    stable_after_s: float
    ae_title: str
    storage_path: str
    # (running, configured) DIMSE worker processes
    dimse_workers: Callable[[], tuple[int, int]] = lambda: (0, 0)


class ProblemError(Exception):
    """Raised inside a route to answer with an RFC 9457 problem."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail


def problem_response(status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        return problem_response(400, "Invalid request", "see errors", errors=errors)

    @app.exception_handler(SQLAlchemyError)
    async def _database(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        logger.error("index query failed: %s", type(exc).__name__)
        return problem_response(503, "Index unavailable", "the index database did not answer")


def _require_uid(value: str, name: str) -> str:
    if not is_valid_uid(value):
        raise ProblemError(400, "Invalid UID", f"{name} is not a valid DICOM UID")
    return value


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="dicom-node",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    _install_problem_handlers(app)
    index = context.index

    @app.get("/api/health")
    def health() -> JSONResponse:
        try:
            index.ping()
        except SQLAlchemyError:
            return problem_response(503, "Index unavailable", "the index database did not answer")
        running, configured = context.dimse_workers()
        if running == 0:
            return problem_response(503, "DIMSE unavailable", "no DIMSE worker is running")
        return JSONResponse(
            {
                "status": "ok" if running == configured else "degraded",
                "dimse_workers": {"running": running, "configured": configured},
                "version": __version__,
                "ae_title": context.ae_title,
                "database": index.dialect,
                "instances": index.instance_count(),
            }
        )

    @app.get("/api/series/{series_instance_uid}")
    def get_series(series_instance_uid: str) -> dict[str, Any]:
        _require_uid(series_instance_uid, "SeriesInstanceUID")
        summary = index.series_summary(series_instance_uid)
        if summary is None:
            raise ProblemError(404, "Series not found", "no instance of this series is stored")
        state = series_state(summary.last_received_at, datetime.now(UTC), context.stable_after_s)
        return {
            "series_instance_uid": summary.series_instance_uid,
            "study_instance_uid": summary.study_instance_uid,
            "modality": summary.modality,
            "series_number": summary.series_number,
            "series_description": summary.series_description,
            "body_part_examined": summary.body_part_examined,
            "instance_count": summary.instance_count,
            "state": state.value,
            "first_received_at": summary.first_received_at.isoformat(),
            "last_received_at": summary.last_received_at.isoformat(),
        }

    @app.get("/api/studies")
    def list_studies(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        total, studies = index.list_studies(limit=limit, offset=offset)
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "studies": [
                {
                    "study_instance_uid": study.study_instance_uid,
                    "study_date": study.study_date,
                    "study_description": study.study_description,
                    "accession_number": study.accession_number,
                    "patient_id": study.patient_id,
                    "series_count": study.series_count,
                    "instance_count": study.instance_count,
                }
                for study in studies
            ],
        }

    return app
