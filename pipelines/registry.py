"""Pipelines by name, as routes and the `pipelines:` config section name them.

Each entry points at a class whose constructor takes the pipeline's options (the mapping under
`pipelines.<name>` in the node's YAML) as keyword arguments and validates them; a bad option
raises `ValueError` naming it. Classes are imported on first use. A class with the class
attribute `uses_models = True` also takes `runtime=` (a `pipelines.runtime.ModelRuntime`, or
None where the pipeline is only inspected: config validation, route explain, versions).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipelines.base import Pipeline

if TYPE_CHECKING:  # the runtime imports torch; inspecting pipelines must not
    from pipelines.runtime import ModelRuntime

__all__ = ["create_pipeline", "pipeline_names", "pipeline_uses_models"]

_PIPELINES: dict[str, str] = {
    "ct_basic": "pipelines.ct_basic:CtBasicPipeline",
    "ct_total": "pipelines.ct_total:CtTotalPipeline",
    "ct_abdomen": "pipelines.ct_abdomen:CtAbdomenPipeline",
    "ct_liver_tumor": "pipelines.ct_liver_tumor:CtLiverTumorPipeline",
    "mr_spine": "pipelines.mr_spine:MrSpinePipeline",
    "cmr_lv": "pipelines.cmr_lv:CmrLvPipeline",
}


def pipeline_names() -> frozenset[str]:
    return frozenset(_PIPELINES)


def _pipeline_class(name: str) -> Any:
    try:
        target = _PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(_PIPELINES))
        raise ValueError(f"unknown pipeline {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def pipeline_uses_models(name: str) -> bool:
    """Whether the pipeline runs installed models (takes a `runtime`)."""
    return bool(getattr(_pipeline_class(name), "uses_models", False))


def create_pipeline(
    name: str, options: Mapping[str, Any] | None = None, *, runtime: ModelRuntime | None = None
) -> Pipeline:
    factory = _pipeline_class(name)
    arguments = dict(options or {})
    if getattr(factory, "uses_models", False):
        if "runtime" in arguments:
            raise ValueError(f"pipeline {name}: 'runtime' is not an option")
        arguments["runtime"] = runtime
    pipeline: Pipeline = factory(**arguments)
    return pipeline
