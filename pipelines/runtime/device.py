"""Where models run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (torch device names)."""

from __future__ import annotations

import re

import torch

__all__ = ["resolve_device"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """The torch device for ``spec``; a CUDA device this machine does not have is a ValueError.

    ``auto`` is ``cuda:0`` when CUDA is available, else ``cpu``. ``cuda`` means ``cuda:0``.
    """
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ValueError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} is not available: this machine has no usable CUDA GPU")
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {spec!r} is not available: this machine has {count} CUDA GPU(s)")
    return torch.device("cuda", index)
