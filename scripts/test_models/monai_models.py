"""MONAI UNet test models (AbdomenAtlas/SuPreM-style abdomen, LiTS-style liver and tumor
cascade) and the tumor model exported as TorchScript and ONNX, each with a spec.yaml.

The networks take what MONAI's own pipelines give them: a channel-first tensor
``(N, 1, x, y, z)`` in the spec's orientation (nibabel axis codes; RAS here, as
``Orientationd(axcodes="RAS")`` makes it), at the spec's spacing, intensities windowed to
[0, 1] (``ScaleIntensityRanged(a_min=-175, a_max=250, b_min=0, b_max=1, clip=True)``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch
import yaml
from scipy import ndimage
from torch import nn

from pipelines import ImageVolume

__all__ = [
    "WINDOW",
    "MonaiModel",
    "bounding_box",
    "build_unet",
    "export_onnx",
    "export_torchscript",
    "from_model_layout",
    "infer",
    "save_checkpoint",
    "to_model_layout",
    "write_spec",
]

WINDOW = (-175.0, 250.0)  # HU, the AbdomenAtlas/SuPreM and LiTS window
ORIENTATION = "RAS"
_LPS = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
Scalar = TypeVar("Scalar", bound=np.generic)


@dataclass(frozen=True)
class MonaiModel:
    """One model: its UNet, patch (x, y, z), labels and how it was saved."""

    name: str
    labels: dict[int, str]
    channels: tuple[int, ...]
    patch_size: tuple[int, int, int]
    iterations: int
    description: str
    checkpoint_key: str | None  # the state dict's key in the checkpoint; None: saved bare
    num_res_units: int = 1
    learning_rate: float = 3e-3
    module_prefix: bool = False  # keys saved as "module.*", as DataParallel training does
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def network_args(self) -> dict[str, Any]:
        return {
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 1 + max(self.labels),
            "channels": list(self.channels),
            "strides": [2] * (len(self.channels) - 1),
            "num_res_units": self.num_res_units,
        }


def build_unet(model: MonaiModel) -> nn.Module:
    from monai.networks.nets.unet import UNet

    network: nn.Module = UNet(**model.network_args)
    return network


def to_model_layout(array: npt.NDArray[Scalar]) -> npt.NDArray[Scalar]:
    """A phantom array ``[z, y, x]`` (LPS: slice 0 lowest) as the model's ``[x, y, z]`` RAS."""
    return np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)[::-1, ::-1, :])


def from_model_layout(array: npt.NDArray[Scalar]) -> npt.NDArray[Scalar]:
    """The inverse of `to_model_layout`."""
    return np.ascontiguousarray(np.asarray(array)[::-1, ::-1, :].transpose(2, 1, 0))


def window(volume: ImageVolume) -> npt.NDArray[np.float32]:
    """The model input ``[x, y, z]``: HU windowed to [0, 1] (phantoms only: LPS, 3 mm)."""
    if volume.direction != _LPS:
        raise ValueError("test-model inputs are phantoms stored LPS (slice 0 lowest)")
    low, high = WINDOW
    scaled = (np.clip(np.asarray(volume.array, dtype=np.float32), low, high) - low) / (high - low)
    return to_model_layout(scaled.astype(np.float32))


def infer(
    network: nn.Module | Any, image: npt.NDArray[np.float32], patch_size: Sequence[int]
) -> torch.Tensor:
    """Softmax ``(K, x, y, z)`` of `network` over `image` by Gaussian-weighted sliding
    windows (MONAI's inferer, 25 % overlap), as the node's runtime runs it."""
    from monai.inferers.utils import sliding_window_inference

    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    with torch.no_grad():
        logits = sliding_window_inference(
            tensor, tuple(patch_size), 2, network, overlap=0.25, mode="gaussian"
        )
    assert isinstance(logits, torch.Tensor)
    return torch.softmax(logits[0], 0)


def bounding_box(mask: npt.NDArray[np.bool_], margin: int) -> tuple[slice, slice, slice] | None:
    """The box around `mask` grown by `margin` voxels on every side (clipped), or None."""
    if not mask.any():
        return None
    found = ndimage.find_objects(mask.astype(np.uint8))[0]
    return tuple(
        slice(max(0, part.start - margin), min(size, part.stop + margin))
        for part, size in zip(found, mask.shape, strict=True)
    )  # type: ignore[return-value]


def save_checkpoint(path: Path, model: MonaiModel, network: nn.Module) -> None:
    """The state dict as the model's source saves it (bare, or under a key, "module."-ed)."""
    state = network.state_dict()
    if model.module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state if model.checkpoint_key is None else {model.checkpoint_key: state}, path)


def write_spec(path: Path, model: MonaiModel, *, network: bool = True) -> None:
    """spec.yaml for `dicom-node models install`: the manifest fields the weights lack."""
    spec: dict[str, Any] = {
        "version": "test-1",
        "modality": "CT",
        "description": model.description,
        "labels": dict(model.labels),
        "input": {
            "spatial_dims": 3,
            "spacing_mm": [3.0, 3.0, 3.0],
            "orientation": ORIENTATION,
            "normalization": {"kind": "ct_window", "window": list(WINDOW)},
            "patch_size": list(model.patch_size),
        },
    }
    if network:
        spec["network"] = {"name": "UNet", "args": model.network_args}
        if model.checkpoint_key is not None:
            spec["network"]["state_dict_key"] = model.checkpoint_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def export_torchscript(path: Path, network: nn.Module, patch_size: Sequence[int]) -> None:
    """`network` traced on one patch and saved as a TorchScript archive."""
    example = torch.zeros((1, 1, *patch_size))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        traced = torch.jit.trace(network.eval(), example)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))


def export_onnx(path: Path, network: nn.Module, patch_size: Sequence[int]) -> None:
    """`network` as ONNX (opset 17, TorchScript-based exporter: no onnxscript needed), batch
    and spatial sizes dynamic; input "image" ``(N, 1, x, y, z)`` (2D: ``(N, 1, x, y)``),
    output "logits"."""
    example = torch.zeros((1, 1, *patch_size))
    axes = {0: "batch", **{2 + k: "xyz"[k] for k in range(len(patch_size))}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=17,
        )
