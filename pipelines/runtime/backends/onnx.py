"""ONNX models (``weights/model.onnx``) through ONNX Runtime.

The CUDA execution provider is used when the runtime's device is CUDA and the installed
onnxruntime build has it (``onnxruntime-gpu``); otherwise the CPU provider, with a warning when
CUDA was asked for. A model exported with a fixed batch size of 1 is fed one window at a time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.runtime.backends.windowed import WindowedBackend

if TYPE_CHECKING:
    from pipelines.models import InstalledModel

__all__ = ["ONNX_FILE", "load_onnx"]

logger = logging.getLogger(__name__)

ONNX_FILE = "weights/model.onnx"


def _providers(device: torch.device) -> list[str | tuple[str, dict[str, str]]]:
    import onnxruntime

    if device.type == "cuda":
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return [("CUDAExecutionProvider", {"device_id": str(device.index or 0)})]
        logger.warning("onnxruntime has no CUDA provider here: ONNX models run on the CPU")
    return ["CPUExecutionProvider"]


def load_onnx(model: InstalledModel, device: torch.device) -> WindowedBackend:
    import onnxruntime

    path = model.path(ONNX_FILE)
    session = onnxruntime.InferenceSession(str(path), providers=_providers(device))
    source = session.get_inputs()[0]
    input_name: str = source.name
    batch_dim = source.shape[0]
    one_at_a_time = isinstance(batch_dim, int) and batch_dim == 1

    def run(batch: np.ndarray) -> np.ndarray:
        outputs = session.run(None, {input_name: batch})
        return np.asarray(outputs[0], dtype=np.float32)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        data = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        if one_at_a_time and data.shape[0] > 1:
            result = np.concatenate([run(data[i : i + 1]) for i in range(data.shape[0])])
        else:
            result = run(data)
        return torch.from_numpy(result).to(batch.device)

    return WindowedBackend(model, device, path.stat().st_size, forward, autocast=False)
