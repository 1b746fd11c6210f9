"""The HTTP application: admin API under /api (JSON); errors are RFC 9457 problem details."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from dicom_node import __version__
from dicom_node.dicomweb import dicomweb_routes
from dicom_node.http.context import ApiContext
from dicom_node.http.jobs import job_routes
from dicom_node.http.problems import (
    ProblemError,
    install_problem_handlers,
    problem_response,
    require_uid,
)
from dicom_node.http.viewer import install_viewer
from dicom_node.series import series_state

__all__ = ["ApiContext", "create_app"]

logger = logging.getLogger(__name__)


def _models_health(context: ApiContext) -> dict[str, Any]:
    """Installed models, and the models routed pipelines need that are not installed."""
    store = context.models
    installed = [model.name for model in store.list()] if store is not None else []
    needed_by: dict[str, list[str]] = {}
    for pipeline, models in sorted(context.routed_models.items()):
        for model in models:
            needed_by.setdefault(model, []).append(pipeline)
    missing = [
        {"name": model, "pipelines": pipelines}
        for model, pipelines in sorted(needed_by.items())
        if model not in installed
    ]
    return {"installed": installed, "missing": missing}


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="dicom-node",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    install_problem_handlers(app)
    app.include_router(job_routes(context))
    if context.dicomweb is not None:
        app.include_router(dicomweb_routes(context.dicomweb))
    index = context.index

    @app.get("/api/health")
    def health() -> JSONResponse:
        try:
            index.ping()
        except SQLAlchemyError:
            return problem_response(503, "Index unavailable", "the index database did not answer")
        status = context.node_status()
        if status is None:
            return problem_response(
                503, "Supervisor not answering", "the main process has not reported its workers"
            )
        if status.dimse_workers.running == 0:
            return problem_response(503, "DIMSE unavailable", "no DIMSE worker is running")
        counts = {
            "dimse_workers": status.dimse_workers,
            "job_workers": status.job_workers,
            "http_workers": status.http_workers,
        }
        models = _models_health(context)
        # A routed pipeline without its model fails every job it gets.
        healthy = all(count.complete for count in counts.values()) and not models["missing"]
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                **{
                    name: {"running": count.running, "configured": count.configured}
                    for name, count in counts.items()
                },
                "version": __version__,
                "ae_title": context.ae_title,
                "database": index.dialect,
                "instances": index.instance_count(),
                "models": models,
            }
        )

    @app.get("/api/series/{series_instance_uid}")
    def get_series(series_instance_uid: str) -> dict[str, Any]:
        require_uid(series_instance_uid, "SeriesInstanceUID")
        summary = index.series_summary(series_instance_uid)
        if summary is None:
            raise ProblemError(404, "Series not found", "no instance of this series is stored")
        state = series_state(
            last_received_at=summary.last_received_at,
            now=datetime.now(UTC),
            stable_after_s=context.stable_after_s,
            receipts=summary.receipts,
            ready_receipts=summary.ready_receipts,
        )
        return {
            "series_instance_uid": summary.series_instance_uid,
            "study_instance_uid": summary.study_instance_uid,
            "modality": summary.modality,
            "series_number": summary.series_number,
            "series_description": summary.series_description,
            "body_part_examined": summary.body_part_examined,
            "instance_count": summary.instance_count,
            "state": state.value,
            "origin": summary.origin,
            "ready_at": summary.ready_at.isoformat() if summary.ready_at else None,
            "ready_reason": summary.ready_reason or None,
            "ready_count": summary.ready_count,
            "expected_instances": summary.expected_instances,
            "expected_from": summary.expected_from or None,
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

    if context.viewer is not None:
        install_viewer(app, context.viewer)  # the fallback: every route above comes first
    return app
