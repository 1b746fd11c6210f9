"""MONAI networks: ``monai.networks.nets.<name>(**args)`` with a checkpoint's state dict.

The state dict is found as the manifest's ``network.state_dict_key`` says, or else under the
first of ``state_dict``, ``net``, ``model``, ``network_weights`` the checkpoint holds, or else the
checkpoint is the state dict itself (the layouts of MONAI bundles, SuPreM/AbdomenAtlas and
nnU-Net checkpoints). A ``module.`` prefix (``DataParallel``) is stripped.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.models import ModelError
from pipelines.runtime.backends.base import module_bytes
from pipelines.runtime.backends.windowed import WindowedBackend

if TYPE_CHECKING:
    from pipelines.models import InstalledModel, NetworkSpec

__all__ = ["load_monai", "state_dict_of", "weight_file"]

logger = logging.getLogger(__name__)

STATE_DICT_KEYS = ("state_dict", "net", "model", "network_weights")


def weight_file(model: InstalledModel, suffixes: tuple[str, ...] = ()) -> Path:
    """The model's one weight file under ``weights/`` (its manifest lists it)."""
    candidates = [
        f.path
        for f in model.manifest.files
        if f.path.startswith("weights/") and (not suffixes or f.path.endswith(suffixes))
    ]
    if len(candidates) != 1:
        raise ModelError(
            f"model {model.name!r}: expected one weight file under weights/ (found {candidates})"
        )
    return model.path(candidates[0])


def _read_checkpoint(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Some published checkpoints pickle more than tensors (optimizer settings, numpy
        # scalars). The file's sha256 matched the manifest before we got here.
        logger.warning(
            "checkpoint %s holds non-tensor objects: loading it with full unpickling", path
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def state_dict_of(checkpoint: Any, key: str | None) -> dict[str, torch.Tensor]:
    """The network weights inside a loaded checkpoint (rules in the module docstring)."""
    if not isinstance(checkpoint, Mapping):
        raise ModelError(f"a MONAI checkpoint is a mapping (got {type(checkpoint).__name__})")
    if key is not None:
        if key not in checkpoint:
            raise ModelError(f"the checkpoint has no {key!r} (it has {sorted(checkpoint)})")
        weights = checkpoint[key]
    else:
        found = next((k for k in STATE_DICT_KEYS if isinstance(checkpoint.get(k), Mapping)), None)
        weights = checkpoint if found is None else checkpoint[found]
    prefix = "module."
    return {
        (name[len(prefix) :] if name.startswith(prefix) else name): value
        for name, value in weights.items()
    }


def build_network(spec: NetworkSpec) -> torch.nn.Module:
    import monai.networks.nets as nets

    factory = getattr(nets, spec.name, None)
    if factory is None:
        raise ModelError(f"monai.networks.nets has no network {spec.name!r}")
    try:
        network: torch.nn.Module = factory(**spec.args)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot build {spec.name} from the manifest's args: {exc}") from exc
    return network


def load_monai(model: InstalledModel, device: torch.device) -> WindowedBackend:
    spec = model.manifest.network
    if spec is None:
        raise ModelError(f"model {model.name!r}: a MONAI model's manifest needs a network section")
    network = build_network(spec)
    weights = state_dict_of(_read_checkpoint(weight_file(model)), spec.state_dict_key)
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelError(f"model {model.name!r}: weights do not fit {spec.name}: {exc}") from exc
    network = network.to(device).eval()

    def forward(batch: torch.Tensor) -> torch.Tensor:
        output = network(batch)
        # deep-supervision networks return their full-resolution head first
        first: torch.Tensor = output[0] if isinstance(output, list | tuple) else output
        return first

    return WindowedBackend(model, device, module_bytes(network), forward, autocast=True)
