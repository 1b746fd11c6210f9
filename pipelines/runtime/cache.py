"""Resident models: loaded once per process, kept in an LRU bounded by a memory budget.

A model's size is the bytes of its parameters and buffers (ONNX: its file size). When the
resident models exceed the budget, the least recently used ones that no prediction is using
are dropped; a model in use is never evicted, so one model larger than the whole budget still
runs (alone). Loading verifies the model's files against the sha256 in its manifest first.

One lock guards the table and is held during a load, so two threads asking for the same model
load it once; predictions run outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from pipelines.models import InstalledModel, ModelFormat, ModelIntegrityError, ModelStore
from pipelines.runtime.backends.base import Backend

__all__ = ["ModelCache", "load_backend"]

logger = logging.getLogger(__name__)


def load_backend(store: ModelStore, model: InstalledModel, device: torch.device) -> Backend:
    """Verify ``model``'s files (sha256) and load it on ``device`` with its format's backend."""
    problems = store.verify(model.name)
    if problems:
        raise ModelIntegrityError(
            f"model '{model.name}' failed verification: {'; '.join(problems)}"
        )
    started = time.perf_counter()
    fmt = model.manifest.format
    backend: Backend
    if fmt is ModelFormat.NNUNET_V2:
        from pipelines.runtime.backends.nnunet import load_nnunet

        backend = load_nnunet(model, device)
    elif fmt is ModelFormat.MONAI:
        from pipelines.runtime.backends.monai import load_monai

        backend = load_monai(model, device)
    elif fmt is ModelFormat.TORCHSCRIPT:
        from pipelines.runtime.backends.torchscript import load_torchscript

        backend = load_torchscript(model, device)
    else:
        from pipelines.runtime.backends.onnx import load_onnx

        backend = load_onnx(model, device)
    logger.info(
        "model '%s' loaded (version %s, %s, %s) in %.2f s",
        model.name,
        model.manifest.version,
        fmt.value,
        device,
        time.perf_counter() - started,
    )
    return backend


@dataclass(eq=False)
class _Entry:
    backend: Backend
    users: int = 0


class ModelCache:
    def __init__(self, store: ModelStore, device: torch.device, budget_bytes: int) -> None:
        self._store = store
        self._device = device
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loads: Counter[str] = Counter()

    @contextmanager
    def use(self, model: InstalledModel) -> Iterator[Backend]:
        """The loaded ``model``, held in use (not evictable) until the block ends."""
        with self._lock:
            entry = self._entries.get(model.name)
            if entry is not None and entry.backend.model.manifest != model.manifest:
                # reinstalled since it was loaded: the resident copy is stale
                if entry.users == 0:
                    del self._entries[model.name]
                entry = None
            if entry is None:
                self._evict(room=_file_bytes(model))
                entry = _Entry(load_backend(self._store, model, self._device))
                self._loads[model.name] += 1
                self._entries[model.name] = entry
            self._entries.move_to_end(model.name)
            entry.users += 1
            self._evict()
        try:
            yield entry.backend
        finally:
            with self._lock:
                entry.users -= 1
                self._evict()

    def loads(self) -> dict[str, int]:
        with self._lock:
            return dict(self._loads)

    def resident(self) -> list[str]:
        """Names of the loaded models, least recently used first."""
        with self._lock:
            return list(self._entries)

    def _evict(self, room: int = 0) -> None:
        """Drop idle models, oldest use first, until the rest (plus ``room``) fits the budget."""
        total = sum(e.backend.size_bytes for e in self._entries.values())
        evicted = False
        for name, entry in list(self._entries.items()):
            if total + room <= self._budget:
                break
            if entry.users:
                continue
            del self._entries[name]
            total -= entry.backend.size_bytes
            evicted = True
            logger.info("model '%s' unloaded (memory budget)", name)
        if evicted and self._device.type == "cuda":
            torch.cuda.empty_cache()  # give the freed blocks back for the next model


def _file_bytes(model: InstalledModel) -> int:
    """A model's size before it is loaded: its weight files' sizes."""
    total = 0
    for weight in model.manifest.files:
        path = model.path(weight.path)
        total += path.stat().st_size if path.is_file() else 0
    return total
