"""From a network's per-class scores to labels and normalised predictive entropy.

Done in slabs along the first spatial axis so that a softmax over many classes never needs a
second full-size copy of the scores.
"""

from __future__ import annotations

import math

import torch

__all__ = ["SCORE_SLAB", "entropy_of", "labels_and_entropy"]

SCORE_SLAB = 8  # slices per softmax step


def labels_and_entropy(
    scores: torch.Tensor,
    *,
    probabilities: bool,
    with_entropy: bool,
    label_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Argmax labels (``label_dtype``) and, if asked, entropy in [0, 1] of ``(K, ...)`` scores.

    ``scores`` are logits (softmax applied here) or, with ``probabilities``, class probabilities.
    The entropy is ``H(p) / ln K``: 0 where one class has all the probability, 1 where all ``K``
    classes are equally likely.
    """
    classes = scores.shape[0]
    if with_entropy and classes < 2:
        raise ValueError("entropy needs a model with at least two output classes")
    labels = torch.empty(scores.shape[1:], dtype=label_dtype, device=scores.device)
    entropy = (
        torch.empty(scores.shape[1:], dtype=torch.float32, device=scores.device)
        if with_entropy
        else None
    )
    for start in range(0, scores.shape[1], SCORE_SLAB):
        slab = scores[:, start : start + SCORE_SLAB]
        labels[start : start + slab.shape[1]] = slab.argmax(0).to(label_dtype)
        if entropy is not None:
            entropy[start : start + slab.shape[1]] = _entropy(slab, probabilities)
    return labels, entropy


def entropy_of(scores: torch.Tensor, *, probabilities: bool) -> torch.Tensor:
    """Entropy in [0, 1] of ``(K, ...)`` scores alone (see :func:`labels_and_entropy`)."""
    if scores.shape[0] < 2:
        raise ValueError("entropy needs a model with at least two output classes")
    entropy = torch.empty(scores.shape[1:], dtype=torch.float32, device=scores.device)
    for start in range(0, scores.shape[1], SCORE_SLAB):
        slab = scores[:, start : start + SCORE_SLAB]
        entropy[start : start + slab.shape[1]] = _entropy(slab, probabilities)
    return entropy


def _entropy(slab: torch.Tensor, probabilities: bool) -> torch.Tensor:
    if probabilities:
        p = slab.float().clamp_min(0.0)
        p = p / p.sum(0, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    else:
        p = torch.softmax(slab.float(), dim=0)
    entropy: torch.Tensor = torch.special.entr(p).sum(0) / math.log(slab.shape[0])
    return entropy.clamp(0.0, 1.0)
