"""The model runtime: installed models run on image volumes, kept resident between series.

``ModelRuntime.predict`` takes a model name and an :class:`~pipelines.volume.ImageVolume` and
gives labels (and optionally entropy) on that volume's grid. It leaves ``torch.set_num_threads``
to the worker that owns the process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from pipelines.models import ModelStore
from pipelines.runtime.cache import ModelCache
from pipelines.runtime.device import resolve_device
from pipelines.runtime.options import DEFAULT_OPTIONS, InferenceOptions, Prediction
from pipelines.volume import ImageVolume

__all__ = ["InferenceOptions", "ModelRuntime", "Prediction"]


class ModelRuntime:
    def __init__(
        self, store: ModelStore, *, device: str = "auto", memory_budget_mb: int = 4096
    ) -> None:
        if memory_budget_mb < 0:
            raise ValueError(f"memory_budget_mb must be >= 0 (got {memory_budget_mb})")
        self._store = store
        self._device = resolve_device(device)
        self._cache = ModelCache(store, self._device, memory_budget_mb * 1024 * 1024)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def store(self) -> ModelStore:
        return self._store

    def predict(
        self,
        model: str,
        volume: ImageVolume,
        options: InferenceOptions = DEFAULT_OPTIONS,
        *,
        extra_channels: Sequence[np.ndarray] = (),
        with_entropy: bool = False,
    ) -> Prediction:
        """Segment ``volume`` with the installed ``model`` (loaded on first use).

        Raises ModelNotInstalledError, ModelIntegrityError (files changed since install),
        ModelError (a model the runtime cannot run) or ValueError (input it cannot take).
        """
        started = time.perf_counter()
        installed = self._store.get(model)
        with self._cache.use(installed) as backend:
            ready = time.perf_counter()
            output = backend.predict(volume, options, extra_channels, with_entropy)
        timings = {"load": ready - started, **output.timings}
        timings["total"] = time.perf_counter() - started
        return Prediction(output.labels, output.entropy, model, installed.manifest.version, timings)

    def loads(self) -> dict[str, int]:
        """How many times each model was loaded in this process."""
        return self._cache.loads()

    def resident(self) -> list[str]:
        """The models loaded now, least recently used first."""
        return self._cache.resident()
