"""A model runtime at the project's own seam (`pipelines.runtime.ModelRuntime`): its `predict`
returns label maps the test prepares from the volume it is given, and its store holds real
`ModelManifest`s. The pipelines' logic is tested with it; the real runtime has its own tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines import ImageVolume
from pipelines.models import (
    InputSpec,
    InstalledModel,
    ModelManifest,
    ModelNotInstalledError,
    NormalizationSpec,
    WeightFile,
)
from pipelines.runtime import InferenceOptions, Prediction

# The prepared output of one model: labels (and optionally entropy) for the volume given.
LabelFunction = Callable[[ImageVolume], np.ndarray]


@dataclass
class FakeModel:
    labels: dict[int, str]
    predict: LabelFunction
    entropy: LabelFunction | None = None
    version: str = "1.0"


def manifest(name: str, labels: Mapping[int, str], version: str = "1.0") -> ModelManifest:
    return ModelManifest(
        name=name,
        version=version,
        format="onnx",
        modality="CT",
        labels=dict(labels),
        input=InputSpec(normalization=NormalizationSpec(kind="none"), patch_size=(8, 8, 8)),
        files=[WeightFile(path="weights/model.onnx", sha256="0" * 64)],
    )


class FakeStore:
    def __init__(self, models: Mapping[str, FakeModel]) -> None:
        self._installed = {
            name: InstalledModel(
                name, Path("/nonexistent") / name, manifest(name, model.labels, model.version)
            )
            for name, model in models.items()
        }

    def get(self, name: str) -> InstalledModel:
        try:
            return self._installed[name]
        except KeyError:
            raise ModelNotInstalledError(name) from None

    def has(self, name: str) -> bool:
        return name in self._installed


@dataclass
class FakeRuntime:
    models: dict[str, FakeModel]
    calls: list[tuple[str, ImageVolume]] = field(default_factory=list)
    # the extra input channels each call was given, in call order
    extra_channels: list[tuple[str, tuple[np.ndarray, ...]]] = field(default_factory=list)

    @property
    def store(self) -> FakeStore:
        return FakeStore(self.models)

    def predict(
        self,
        model: str,
        volume: ImageVolume,
        options: InferenceOptions = InferenceOptions(),  # noqa: B008
        *,
        extra_channels: Sequence[np.ndarray] = (),
        with_entropy: bool = False,
    ) -> Prediction:
        fake = self.models[model]
        self.calls.append((model, volume))
        self.extra_channels.append((model, tuple(extra_channels)))
        labels = np.asarray(fake.predict(volume), dtype=np.uint8)
        assert labels.shape == volume.shape
        entropy = None
        if with_entropy and fake.entropy is not None:
            entropy = np.asarray(fake.entropy(volume), dtype=np.float32)
        return Prediction(
            labels=labels, entropy=entropy, model=model, model_version=fake.version, timings={}
        )


def constant(labels: np.ndarray) -> LabelFunction:
    """A model that answers `labels` whatever the volume (it must be on the volume's grid)."""
    return lambda volume: labels
