"""What every model format offers the runtime once loaded: its size and ``predict``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.volume import ImageVolume

if TYPE_CHECKING:
    from pipelines.models import InstalledModel, ModelManifest
    from pipelines.runtime.options import InferenceOptions

__all__ = ["Backend", "BackendOutput", "label_dtypes", "module_bytes"]


@dataclass(frozen=True, eq=False)
class BackendOutput:
    labels: np.ndarray  # on the input volume's grid
    entropy: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


class Backend(ABC):
    """A model loaded on a device, ready to segment volumes."""

    def __init__(self, model: InstalledModel, device: torch.device, size_bytes: int) -> None:
        self.model = model
        self.device = device
        self.size_bytes = size_bytes

    @abstractmethod
    def predict(
        self,
        volume: ImageVolume,
        options: InferenceOptions,
        extra_channels: Sequence[np.ndarray],
        with_entropy: bool,
    ) -> BackendOutput: ...


def label_dtypes(manifest: ModelManifest) -> tuple[torch.dtype, type[np.unsignedinteger]]:
    """(torch working dtype, numpy output dtype) for the manifest's label values.

    uint8 when every value is below 256, else uint16 (worked on as int32: torch lacks most
    uint16 kernels).
    """
    largest = max(manifest.labels, default=0)
    if largest < 256:
        return torch.uint8, np.uint8
    return torch.int32, np.uint16


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (the resident-memory estimate)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
