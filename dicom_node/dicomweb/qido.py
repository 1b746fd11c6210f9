"""QIDO-RS (PS3.18): being written."""

from __future__ import annotations

from fastapi import APIRouter

from dicom_node.dicomweb.context import DicomWebContext

__all__ = ["qido_routes"]


def qido_routes(context: DicomWebContext) -> APIRouter:
    return APIRouter()
