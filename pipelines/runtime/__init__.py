"""Model runtime: installed models (nnU-Net v2, MONAI, TorchScript, ONNX) run on image volumes.

Pre- and post-processing happen in process on torch tensors: exact reorientation to the model's
axis codes, resampling to its spacing, normalisation, and the labels back to the source grid by
nearest label. Models stay resident between series (an LRU with a memory budget).

`ModelRuntime` and `resolve_device` import torch; they load on first access, so that importing
`InferenceOptions` (pipeline option models) does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipelines.runtime.options import InferenceOptions, Prediction

if TYPE_CHECKING:
    from pipelines.runtime.device import resolve_device
    from pipelines.runtime.runtime import ModelRuntime

__all__ = ["InferenceOptions", "ModelRuntime", "Prediction", "resolve_device"]

_LAZY = {
    "ModelRuntime": "pipelines.runtime.runtime",
    "resolve_device": "pipelines.runtime.device",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
