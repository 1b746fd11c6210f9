"""Intensity normalisation of a model input, as its manifest's ``NormalizationSpec`` says.

- ``ct_window``: clip to ``[lo, hi]`` (Hounsfield units) and map linearly to ``[0, 1]``
  (MONAI ``ScaleIntensityRanged(a_min=lo, a_max=hi, b_min=0, b_max=1, clip=True)``, the
  transform the AbdomenAtlas/SuPreM and LiTS models were trained with);
- ``zscore``: optionally clip to ``window`` first, then subtract the mean and divide by the
  standard deviation, fixed ones from the spec or the image's own (MONAI
  ``NormalizeIntensity``; nnU-Net's ``CTNormalization`` is this with the dataset's values);
- ``none``: the values as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pipelines.models import NormalizationSpec

__all__ = ["normalize"]

_MIN_STD = 1e-8  # a constant image has std 0: leave it at 0 instead of dividing by zero


def normalize(image: torch.Tensor, spec: NormalizationSpec) -> torch.Tensor:
    """``image`` (float) normalised per ``spec``; a new tensor, the input is left alone."""
    if spec.kind == "none":
        return image.clone()
    if spec.kind == "ct_window":
        if spec.window is None:
            raise ValueError("ct_window normalisation needs a window (lo, hi)")
        low, high = spec.window
        if high <= low:
            raise ValueError(f"ct_window needs lo < hi (got {spec.window})")
        return (image.clamp(low, high) - low) / (high - low)
    if spec.kind == "zscore":
        values = image.clamp(*spec.window) if spec.window is not None else image
        mean = float(values.mean()) if spec.mean is None else spec.mean
        std = float(values.std()) if spec.std is None else spec.std
        return (values - mean) / max(std, _MIN_STD)
    raise ValueError(f"unknown normalisation {spec.kind!r}")
