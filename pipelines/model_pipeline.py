"""What every pipeline that runs installed models shares: the runtime seam, the version, checks.

A model pipeline constructs without a runtime (config validation, route explain need only its
options) and refuses to run without one. Its version is the code version plus ``+NAME-VERSION``
for each model its options name (``+NAME-missing`` for one not installed), so installing other
weights makes a new job key and series are run again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from pipelines.base import PipelineError, SeriesFacts
from pipelines.models import InstalledModel, ModelError, ModelNotInstalledError, ModelStore
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["ModelPipeline"]


class ModelPipeline(ABC):
    """Base of the model pipelines: `name`, `code_version` and `required_models` per class."""

    name: str
    code_version: str
    uses_models = True
    modality = "CT"  # the series' Modality this pipeline runs on

    def __init__(self, runtime: ModelRuntime | None) -> None:
        self.runtime = runtime

    @property
    @abstractmethod
    def required_models(self) -> tuple[str, ...]:
        """The installed model names the options name, in the order they run."""

    @property
    def version(self) -> str:
        return self.version_with(None if self.runtime is None else self.runtime.store)

    def version_with(self, store: ModelStore | None) -> str:
        """The version with the models installed in `store` (the code version alone without
        one): what the node's intake uses, so that the main process need not import torch."""
        suffix = ""
        for model in self.required_models:
            if store is None:
                continue
            try:
                suffix += f"+{model}-{store.get(model).manifest.version}"
            except ModelNotInstalledError:
                suffix += f"+{model}-missing"
            except ModelError:  # a broken folder must not stop the node from starting
                suffix += f"+{model}-broken"
        return self.code_version + suffix

    def prepare(
        self, volume: ImageVolume, facts: SeriesFacts
    ) -> tuple[ModelRuntime, dict[str, InstalledModel]]:
        """The runtime and the required models, after refusing what this pipeline cannot run:
        a series of another modality, no runtime, a model not installed (ModelNotInstalledError,
        a PipelineError, before any work)."""
        modality = facts.modality or volume.modality
        if modality and modality != self.modality:
            raise PipelineError(
                f"{self.name} needs a {self.modality} series (this one is {modality})"
            )
        if self.runtime is None:
            raise PipelineError(f"pipeline {self.name} needs the model runtime")
        models = {name: self.runtime.store.get(name) for name in self.required_models}
        return self.runtime, models
