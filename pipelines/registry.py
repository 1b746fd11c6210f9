"""Pipelines by name, as routes and the `pipelines:` config section name them.

Each entry points at a class whose constructor takes the pipeline's options (the mapping under
`pipelines.<name>` in the node's YAML) as keyword arguments and validates them; a bad option
raises `ValueError` naming it. Classes are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pipelines.base import Pipeline

__all__ = ["create_pipeline", "pipeline_names"]

_PIPELINES: dict[str, str] = {
    "ct_basic": "pipelines.ct_basic:CtBasicPipeline",
}


def pipeline_names() -> frozenset[str]:
    return frozenset(_PIPELINES)


def create_pipeline(name: str, options: Mapping[str, Any] | None = None) -> Pipeline:
    try:
        target = _PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(_PIPELINES))
        raise ValueError(f"unknown pipeline {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    pipeline: Pipeline = factory(**dict(options or {}))
    return pipeline
