"""Install-time checks that the weights open as their format says, so that a wrong spec
fails at `models install` and not at the first series.

torch, monai and onnxruntime are imported inside the functions: the store itself (list,
verify, the HTTP health check) never imports them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.models.errors import ModelInstallError
from pipelines.models.manifest import InputSpec, NetworkSpec

__all__ = ["check_monai", "check_onnx", "check_torchscript", "select_state_dict"]

logger = logging.getLogger(__name__)

# Where training code commonly keeps the weights inside a checkpoint (MONAI bundles and
# Lightning: "state_dict"; SuPreM: "net"; "model"; nnU-Net: "network_weights").
STATE_DICT_KEYS = ("state_dict", "net", "model", "network_weights")


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def select_state_dict(checkpoint: object, key: str | None) -> dict[str, Any]:
    """The state dict inside a loaded checkpoint (NetworkSpec.state_dict_key rules), with a
    DataParallel "module." prefix removed."""
    if not isinstance(checkpoint, Mapping):
        raise ModelInstallError(f"the checkpoint is a {type(checkpoint).__name__}, not a mapping")
    if key is not None:
        if key not in checkpoint:
            known = ", ".join(sorted(str(name) for name in checkpoint)[:10])
            raise ModelInstallError(f"the checkpoint has no entry {key!r} (has: {known})")
        state = checkpoint[key]
    else:
        state = next(
            (
                checkpoint[name]
                for name in STATE_DICT_KEYS
                if isinstance(checkpoint.get(name), Mapping)
            ),
            checkpoint,
        )
    if not isinstance(state, Mapping):
        raise ModelInstallError(f"the checkpoint entry {key!r} is not a state dict")
    prefix = "module."
    if state and all(str(name).startswith(prefix) for name in state):
        return {str(name)[len(prefix) :]: value for name, value in state.items()}
    return {str(name): value for name, value in state.items()}


def check_monai(network: NetworkSpec, labels: Mapping[int, str], checkpoint: Path) -> None:
    """The network builds from its spec, has an output channel per label value, and the
    checkpoint's state dict fits it exactly."""
    import torch
    from monai.networks import nets

    factory = getattr(nets, network.name, None)
    if not isinstance(factory, type):
        raise ModelInstallError(
            f"network.name {network.name!r} is not a class of monai.networks.nets"
        )
    try:
        module = factory(**network.args)
    except Exception as exc:  # any constructor complaint is a spec error
        raise ModelInstallError(
            f"network {network.name} cannot be built from network.args: {_brief(exc)}"
        ) from exc
    out_channels = network.args.get("out_channels")
    if isinstance(out_channels, int) and max(labels) >= out_channels:
        raise ModelInstallError(
            f"labels go up to {max(labels)} but network.args.out_channels is {out_channels}"
        )
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights only load failed" not in str(exc).lower():
            raise ModelInstallError(
                f"{checkpoint.name} is not a PyTorch checkpoint: {_brief(exc)}"
            ) from exc
        # Objects beyond tensors (some Lightning checkpoints): the runtime loads it fully.
        logger.warning(
            "%s holds objects torch.load(weights_only=True) refuses; its keys are checked at"
            " the first load",
            checkpoint.name,
        )
        return
    state = select_state_dict(loaded, network.state_dict_key)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelInstallError(
            f"the checkpoint does not fit network {network.name} as network.args build it:"
            f" {_brief(exc)}"
        ) from exc


def check_torchscript(path: Path) -> None:
    import torch

    try:
        with warnings.catch_warnings():
            # torch 2.9+ marks TorchScript deprecated; it still loads the published models.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ModelInstallError(
            f"{path.name} is not a TorchScript archive torch.jit.load reads: {_brief(exc)}"
        ) from exc


def check_onnx(path: Path, input_spec: InputSpec, labels: Mapping[int, str]) -> None:
    """One input of rank spatial_dims + 2 (N, C, spatial...) with `channels` channels, and an
    output with a channel per label value (where the model fixes those sizes)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelInstallError(
            f"{path.name} is not an ONNX model onnxruntime opens: {_brief(exc)}"
        ) from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelInstallError(f"{path.name} has {len(inputs)} inputs; one image input is needed")
    shape = inputs[0].shape
    if len(shape) != input_spec.spatial_dims + 2:
        raise ModelInstallError(
            f"{path.name} takes a rank-{len(shape)} input; input.spatial_dims"
            f" {input_spec.spatial_dims} needs rank {input_spec.spatial_dims + 2} (N, C, ...)"
        )
    if isinstance(shape[1], int) and shape[1] != input_spec.channels:
        raise ModelInstallError(
            f"{path.name} takes {shape[1]} channels; input.channels is {input_spec.channels}"
        )
    output = session.get_outputs()[0].shape
    if len(output) > 1 and isinstance(output[1], int) and max(labels) >= output[1]:
        raise ModelInstallError(
            f"labels go up to {max(labels)} but {path.name} outputs {output[1]} channels"
        )
