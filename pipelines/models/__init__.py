"""The model store: installed model weights with their manifests (`models_dir`).

`ModelStore(root)` lists, installs, verifies and removes models; `ModelManifest` is what each
model's `manifest.yaml` holds. Nothing here imports torch at import time (the HTTP workers
read the store); install-time checks import it inside their functions.
"""

from pipelines.models.errors import (
    ModelError,
    ModelInstallError,
    ModelIntegrityError,
    ModelNotInstalledError,
)
from pipelines.models.manifest import (
    MANIFEST_NAME,
    InputSpec,
    ModelFormat,
    ModelManifest,
    NetworkSpec,
    NnunetSpec,
    NormalizationSpec,
    WeightFile,
)
from pipelines.models.store import InstalledModel, ModelStore

__all__ = [
    "MANIFEST_NAME",
    "InputSpec",
    "InstalledModel",
    "ModelError",
    "ModelFormat",
    "ModelInstallError",
    "ModelIntegrityError",
    "ModelManifest",
    "ModelNotInstalledError",
    "ModelStore",
    "NetworkSpec",
    "NnunetSpec",
    "NormalizationSpec",
    "WeightFile",
]
