"""The spec YAML given to `models install --spec`: the manifest fields a weight format does
not carry (labels, input, network, modality, version, description, output).

Example (a MONAI UNet checkpoint)::

    version: "1.0"
    modality: CT
    labels: {1: spleen, 2: liver}
    input:
      spacing_mm: [1.5, 1.5, 1.5]
      orientation: RAS
      normalization: {kind: ct_window, window: [-175, 250]}
      patch_size: [96, 96, 96]
    network:
      name: UNet
      args: {spatial_dims: 3, in_channels: 1, out_channels: 3, channels: [16, 32, 64, 128],
             strides: [2, 2, 2], num_res_units: 2}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pipelines.models.errors import ModelInstallError
from pipelines.models.manifest import NetworkSpec, Version, describe_validation_error

__all__ = ["ModelSpec", "read_spec"]


def _value_to_name(labels: object) -> object:
    """Labels as value -> name; dataset.json's name -> value form is turned around."""
    if (
        isinstance(labels, dict)
        and labels
        and all(
            isinstance(key, str) and not key.isdigit() and isinstance(value, int)
            for key, value in labels.items()
        )
    ):
        return {value: key for key, value in labels.items()}
    return labels


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Version | None = None
    modality: Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,16}$")] | None = None
    description: str | None = None
    labels: Annotated[dict[int, str], BeforeValidator(_value_to_name)] | None = None
    # Checked as an InputSpec once the format has filled what it knows (nnU-Net: patch size).
    input: dict[str, Any] | None = None
    network: NetworkSpec | None = None
    output: Literal["logits", "probabilities"] | None = None
    role: Literal["segments", "intermediate"] | None = None

    def given(self) -> list[str]:
        """The fields this spec sets."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


def read_spec(path: Path) -> ModelSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelInstallError(f"cannot read spec {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ModelInstallError(f"spec {path} is not valid YAML: {detail}") from exc
    if not isinstance(data, dict):
        raise ModelInstallError(f"spec {path} must be a mapping of manifest fields")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise ModelInstallError(f"spec {path}: {describe_validation_error(exc)}") from exc
