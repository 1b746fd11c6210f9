"""The DICOMweb server under /dicomweb (PS3.18): STOW-RS, QIDO-RS, WADO-RS."""

from fastapi import APIRouter

from dicom_node.dicomweb.context import DicomWebContext
from dicom_node.dicomweb.guard import unmatched_routes
from dicom_node.dicomweb.qido import qido_routes
from dicom_node.dicomweb.stow import stow_routes
from dicom_node.dicomweb.wado import wado_routes

__all__ = ["DicomWebContext", "dicomweb_routes"]

PREFIX = "/dicomweb"


def dicomweb_routes(context: DicomWebContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    router.include_router(stow_routes(context))
    router.include_router(qido_routes(context))
    router.include_router(wado_routes(context))
    router.include_router(unmatched_routes())  # last: whatever nothing else matched
    return router
