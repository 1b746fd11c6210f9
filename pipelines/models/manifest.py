"""The manifest of an installed model: `<models_dir>/<name>/manifest.yaml`.

It says what the weight format does not: the label map (value -> structure name of
`pipelines.codes`), the expected modality, and for formats that carry no preprocessing
(MONAI, TorchScript, ONNX) the input spacing, orientation and intensity normalisation. Axis
orders are (x, y, z) = (column, row, slice) throughout; orientation codes follow nibabel's
axcodes convention (the anatomical direction toward which each index grows: "RAS" is nibabel's
canonical, "LPS" is DICOM's patient coordinate system, PS3.3 C.7.6.2.1.1, as axial images of
a head-first supine patient are stored).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.models.errors import ModelError

__all__ = [
    "MANIFEST_NAME",
    "NAME_PATTERN",
    "InputSpec",
    "ModelFormat",
    "ModelManifest",
    "NetworkSpec",
    "NnunetSpec",
    "NormalizationSpec",
    "Version",
    "WeightFile",
    "describe_validation_error",
    "manifest_yaml",
    "read_manifest",
]

MANIFEST_NAME = "manifest.yaml"
# A model name is a folder name: no leading dot (hidden and in-progress folders start with one).
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
_SHA256 = r"^[0-9a-f]{64}$"


class ModelFormat(StrEnum):
    """How the weights are stored, hence which backend runs them."""

    NNUNET_V2 = "nnunet_v2"  # an nnU-Net v2 results folder (plans.json, dataset.json, fold_N/)
    MONAI = "monai"  # a state dict for a class of monai.networks.nets
    TORCHSCRIPT = "torchscript"  # torch.jit.save archive
    ONNX = "onnx"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_text(value: object) -> object:
    # YAML reads `version: 1.0` as a float; a version is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Version = Annotated[str, BeforeValidator(_as_text), Field(pattern=r"^[A-Za-z0-9_.+-]{1,32}$")]


def _check_relative(value: str) -> str:
    """A path inside the model folder: relative, POSIX separators, no `..`."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or "\\" in value or ".." in path.parts:
        raise ValueError(f"{value!r} is not a relative path inside the model folder")
    return value


RelativePath = Annotated[str, AfterValidator(_check_relative)]


class NormalizationSpec(_Model):
    """Intensity normalisation before the network: `ct_window` clips to `window` and maps it
    linearly to [0, 1]; `zscore` (optionally clipped to `window` first) subtracts `mean` and
    divides by `std` (each None: the image's own); `none` passes values through."""

    kind: Literal["ct_window", "zscore", "none"]
    window: tuple[float, float] | None = None
    mean: float | None = None
    std: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ValueError("window must be [low, high] with low < high")
        if self.kind == "ct_window" and self.window is None:
            raise ValueError("kind ct_window needs window: [low, high] (HU)")
        if self.kind != "zscore" and (self.mean is not None or self.std is not None):
            raise ValueError(f"mean and std apply to kind zscore only, not {self.kind}")
        if self.kind == "none" and self.window is not None:
            raise ValueError("kind none takes no window")
        return self


def _check_orientation(value: str) -> str:
    letters = value.upper()
    if len(letters) != 3 or sorted(
        {"L": 0, "R": 0, "P": 1, "A": 1, "I": 2, "S": 2}.get(c, 9) for c in letters
    ) != [0, 1, 2]:
        raise ValueError(
            f"orientation {value!r} must be 3 letters: one of L/R, one of P/A, one of I/S"
            " (e.g. RAS or LPS)"
        )
    return letters


Orientation = Annotated[str, AfterValidator(_check_orientation)]
PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class InputSpec(_Model):
    """What the network expects: spacing and patch size in (x, y, z) order; for 2D networks
    the z entry of `patch_size` is 1. `spacing_mm`/`orientation` None: as stored."""

    spatial_dims: Literal[2, 3] = 3
    spacing_mm: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    orientation: Orientation | None = None
    normalization: NormalizationSpec
    patch_size: tuple[PositiveInt, PositiveInt, PositiveInt]
    channels: PositiveInt = 1  # the image plus extra channels

    @model_validator(mode="after")
    def _flat_patch_for_2d(self) -> Self:
        if self.spatial_dims == 2 and self.patch_size[2] != 1:
            raise ValueError("a 2D network's patch_size is [x, y, 1]")
        return self


class NetworkSpec(_Model):
    """A class of `monai.networks.nets` and its constructor arguments. `state_dict_key` None:
    the checkpoint's "state_dict", "net", "model" or "network_weights" entry, else the
    checkpoint itself; a "module." prefix (DataParallel) is stripped."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    args: dict[str, Any] = Field(default_factory=dict)
    state_dict_key: str | None = None


def _fold(value: object) -> object:
    # "0" and 0 are the same fold (folder fold_0); "all" is nnU-Net's fold_all.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _check_fold(value: int | str) -> int | str:
    if isinstance(value, str) and value != "all":
        raise ValueError(f"fold {value!r} is neither a number nor 'all'")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"fold {value} is negative")
    return value


Fold = Annotated[int | str, BeforeValidator(_fold), AfterValidator(_check_fold)]


class NnunetSpec(_Model):
    """Where the nnU-Net v2 results folder is and which of its parts to use (nnU-Net's
    `Trainer__Plans__Configuration` folder naming)."""

    configuration: Annotated[str, Field(min_length=1)]
    trainer: Annotated[str, Field(min_length=1)]
    plans: Annotated[str, Field(min_length=1)]
    folds: Annotated[tuple[Fold, ...], Field(min_length=1)]
    checkpoint: Annotated[str, Field(pattern=r"^[^/\\]+$")] = "checkpoint_final.pth"
    results_folder: RelativePath = "weights"

    def checkpoint_paths(self) -> list[str]:
        """The checkpoint of each fold, relative to the model folder."""
        return [f"{self.results_folder}/fold_{fold}/{self.checkpoint}" for fold in self.folds]


class WeightFile(_Model):
    path: RelativePath  # relative to the model folder
    sha256: Annotated[str, Field(pattern=_SHA256)]


_FORMAT_NEEDS: dict[ModelFormat, tuple[str, ...]] = {
    ModelFormat.NNUNET_V2: ("nnunet",),
    ModelFormat.MONAI: ("input", "network"),
    ModelFormat.TORCHSCRIPT: ("input",),
    ModelFormat.ONNX: ("input",),
}


class ModelManifest(_Model):
    """`manifest.yaml`: one installed model, valid the moment it is constructed."""

    schema_version: Literal[1] = 1
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Version
    format: ModelFormat
    modality: Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,16}$")] | None = None
    description: str = ""
    # Label value in the network's output -> structure name (a key of pipelines.codes), or,
    # for an intermediate model, a class name its pipeline interprets.
    labels: Annotated[dict[int, str], Field(min_length=1)]
    # "segments": the labels are structures written to the SEG as they are; "intermediate":
    # classes a pipeline turns into structures (TotalSpineSeg's steps: landmark discs, odd
    # vertebrae ...), so their names need no code.
    role: Literal["segments", "intermediate"] = "segments"
    input: InputSpec | None = None
    network: NetworkSpec | None = None
    nnunet: NnunetSpec | None = None
    output: Literal["logits", "probabilities"] = "logits"
    files: Annotated[list[WeightFile], Field(min_length=1)]
    source: str = ""

    @field_validator("labels")
    @classmethod
    def _label_values(cls, labels: dict[int, str]) -> dict[int, str]:
        for value, name in labels.items():
            if not 1 <= value <= 65535:
                raise ValueError(f"label value {value} is outside 1..65535 (0 is background)")
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"label {value}: name {name!r} is not a structure name")
        names = list(labels.values())
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"label names used for more than one value: {', '.join(twice)}")
        return labels

    @model_validator(mode="after")
    def _format_fields(self) -> Self:
        missing = [field for field in _FORMAT_NEEDS[self.format] if getattr(self, field) is None]
        if missing:
            raise ValueError(f"a {self.format} model needs: {', '.join(missing)}")
        if self.format is not ModelFormat.MONAI and self.network is not None:
            raise ValueError(f"network applies to monai models only, not {self.format}")
        if self.format is not ModelFormat.NNUNET_V2 and self.nnunet is not None:
            raise ValueError(f"nnunet applies to nnunet_v2 models only, not {self.format}")
        paths = [weight.path for weight in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files lists a path twice")
        if self.nnunet is not None:
            absent = [path for path in self.nnunet.checkpoint_paths() if path not in paths]
            if absent:
                raise ValueError(f"files lacks the nnU-Net checkpoints {', '.join(absent)}")
        return self


def describe_validation_error(error: ValidationError) -> str:
    """A pydantic error as one line: `where: what; where: what`."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def manifest_yaml(manifest: ModelManifest) -> str:
    data = manifest.model_dump(mode="json", exclude_none=True)
    data["labels"] = {int(value): name for value, name in data["labels"].items()}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def read_manifest(path: Path) -> ModelManifest:
    """Read and validate a manifest file; raise ModelError saying what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise ModelError(f"{path}: {describe_validation_error(exc)}") from exc
