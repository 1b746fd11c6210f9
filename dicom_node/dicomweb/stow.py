"""STOW-RS (PS3.18): being written."""

from __future__ import annotations

from fastapi import APIRouter

from dicom_node.dicomweb.context import DicomWebContext

__all__ = ["stow_routes"]


def stow_routes(context: DicomWebContext) -> APIRouter:
    return APIRouter()
