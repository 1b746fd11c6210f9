"""What the runtime takes and gives back, without importing torch.

Pipelines' option models embed `InferenceOptions`; checking a config or explaining a route
builds them, and those processes (main, HTTP workers) must not pay torch's import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_OPTIONS", "InferenceOptions", "Prediction"]


class InferenceOptions(BaseModel):
    """How a model is run (not what it computes): per pipeline in the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # nnU-Net: sliding-window step as a fraction of the patch, and test-time mirroring
    tile_step_size: float = Field(default=0.5, gt=0.0, le=1.0)
    mirroring: bool = True
    # MONAI/TorchScript/ONNX: sliding-window overlap and windows per forward pass
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)
    sw_batch_size: int = Field(default=1, ge=1)
    # mixed precision; only on CUDA (CPU autocast is slow on most CPUs and changes results)
    amp: bool = True


DEFAULT_OPTIONS = InferenceOptions()


@dataclass(frozen=True, eq=False)
class Prediction:
    """A model's output on the input volume's grid.

    ``labels`` holds the manifest's label values (0 = background), uint8 when they are all
    below 256, else uint16. ``entropy`` (float32, when asked for) is the normalised predictive
    entropy ``H(p) / ln C`` of the softmax at model resolution, in [0, 1].
    """

    labels: np.ndarray
    entropy: np.ndarray | None
    model: str
    model_version: str
    timings: dict[str, float] = field(default_factory=dict)
