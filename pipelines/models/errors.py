"""The model store's exceptions, in one tree:

ModelError
├── ModelNotInstalledError   (also a pipelines.PipelineError: a job fails at once, no retry)
├── ModelIntegrityError      (a weight file's sha256 no longer matches the manifest)
└── ModelInstallError        (a source that cannot be installed as given)
"""

from __future__ import annotations

from pipelines.base import PipelineError

__all__ = ["ModelError", "ModelInstallError", "ModelIntegrityError", "ModelNotInstalledError"]


class ModelError(Exception):
    """Anything wrong with an installed model or an install."""


class ModelNotInstalledError(ModelError, PipelineError):
    """A model a pipeline needs is not in the store; the message says how to install it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"model '{name}' is not installed: dicom-node models install SOURCE --name {name}"
        )


class ModelIntegrityError(ModelError):
    """An installed model's files differ from what its manifest recorded (sha256)."""


class ModelInstallError(ModelError):
    """An install source that is not a model, or a spec that does not complete it."""
