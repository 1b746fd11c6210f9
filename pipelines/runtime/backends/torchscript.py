"""TorchScript models (``weights/model.pt``) through ``torch.jit.load``."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from pipelines.runtime.backends.base import module_bytes
from pipelines.runtime.backends.windowed import WindowedBackend

if TYPE_CHECKING:
    from pipelines.models import InstalledModel

__all__ = ["TORCHSCRIPT_FILE", "load_torchscript"]

TORCHSCRIPT_FILE = "weights/model.pt"


def load_torchscript(model: InstalledModel, device: torch.device) -> WindowedBackend:
    with warnings.catch_warnings():
        # torch >= 2.10 deprecates TorchScript, but published models (Slicer, MONAI bundles)
        # still ship in it, and loading is what it is needed for here.
        warnings.filterwarnings(
            "ignore", message=r".torch\.jit\.load. is deprecated", category=DeprecationWarning
        )
        path = str(model.path(TORCHSCRIPT_FILE))
        network = torch.jit.load(path, map_location=device)  # type: ignore[no-untyped-call]
    network.eval()

    def forward(batch: torch.Tensor) -> torch.Tensor:
        output = network(batch)
        first: torch.Tensor = output[0] if isinstance(output, list | tuple) else output
        return first

    return WindowedBackend(model, device, module_bytes(network), forward, autocast=True)
