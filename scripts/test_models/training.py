"""Brief supervised training of a segmentation network on random patches, and scoring.

The loop follows nnU-Net's recipe in miniature: random patches, a share of them centred on a
foreground voxel of a randomly chosen class (nnU-Net's foreground oversampling), optional
random mirroring (nnU-Net's mirroring augmentation, only for models whose labels have no
side), and the sum of cross-entropy and soft Dice (nnU-Net's ``DC_and_CE_loss`` with
``do_bg=False`` and batch Dice, over the classes the phantoms hold). Adam with a
cosine-decayed learning rate replaces nnU-Net's 1000 epochs of SGD: the models only need to
learn the phantoms, within a minute or two of CPU each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Case", "TrainingPlan", "dice_scores", "train"]

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.float32]
Labels = npt.NDArray[np.integer]


@dataclass(frozen=True)
class Case:
    """One training image, channels first ``(C, *spatial)``, and its labels ``(*spatial)``.
    `disputed` voxels (annotators disagree) count in the cross-entropy only: soft Dice would
    reward confidence there, cross-entropy rewards the odds the labels give."""

    image: Image
    labels: Labels
    disputed: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True)
class TrainingPlan:
    patch_size: tuple[int, int, int]
    iterations: int
    classes: int  # output channels
    dice_classes: tuple[int, ...]  # the foreground classes the cases hold
    batch_size: int = 2
    learning_rate: float = 3e-3
    foreground_fraction: float = 0.5
    mirror_axes: tuple[int, ...] = ()  # spatial axes flipped at random
    disputed_weight: float = 1.0  # of a disputed voxel's cross-entropy
    seed: int = 0


def train(network: nn.Module, cases: Sequence[Case], plan: TrainingPlan) -> float:
    """Train `network` (batch in, logits out) in place; returns the mean loss of the last
    tenth of the iterations."""
    rng = np.random.default_rng(plan.seed)
    torch.manual_seed(plan.seed)
    samplers = [_PatchSampler(case, plan.patch_size) for case in cases]
    optimizer = torch.optim.Adam(network.parameters(), lr=plan.learning_rate)
    warmup = max(1, plan.iterations // 20)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, plan.iterations - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    network.train()
    losses: list[float] = []
    for step in range(plan.iterations):
        images, labels, agreed = [], [], []
        for _ in range(plan.batch_size):
            sampler = samplers[int(rng.integers(len(samplers)))]
            image, label, disputed = sampler.sample(rng, rng.random() < plan.foreground_fraction)
            for axis in plan.mirror_axes:
                if rng.random() < 0.5:
                    image, label = np.flip(image, axis + 1), np.flip(label, axis)
                    disputed = np.flip(disputed, axis)
            images.append(np.ascontiguousarray(image))
            labels.append(np.ascontiguousarray(label))
            agreed.append(~disputed)
        batch = torch.from_numpy(np.stack(images))
        target = torch.from_numpy(np.stack(labels).astype(np.int64))
        mask = torch.from_numpy(np.stack(agreed))
        loss = _dice_ce(network(batch), target, mask, plan)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, plan.iterations // 5) == 0:
            logger.info("  step %d/%d loss %.3f", step + 1, plan.iterations, np.mean(losses[-20:]))
    network.eval()
    return float(np.mean(losses[-max(1, plan.iterations // 10) :]))


def _dice_ce(
    logits: torch.Tensor, target: torch.Tensor, agreed: torch.Tensor, plan: TrainingPlan
) -> torch.Tensor:
    """Cross-entropy plus (1 - batch soft Dice over the `agreed` voxels) averaged over the
    plan's Dice classes."""
    voxel_weights = torch.where(agreed, 1.0, plan.disputed_weight)
    voxel_losses = F.cross_entropy(logits, target, reduction="none")
    cross_entropy = (voxel_losses * voxel_weights).sum() / voxel_weights.sum()
    weight = agreed.unsqueeze(1).to(logits.dtype)
    probabilities = torch.softmax(logits, 1) * weight
    one_hot = F.one_hot(target, plan.classes).movedim(-1, 1).to(logits.dtype) * weight
    axes = (0, *range(2, logits.ndim))
    chosen = list(plan.dice_classes)
    intersection = (probabilities[:, chosen] * one_hot[:, chosen]).sum(axes)
    total = probabilities[:, chosen].sum(axes) + one_hot[:, chosen].sum(axes)
    dice = (2.0 * intersection + 1e-5) / (total + 1e-5)
    return cross_entropy + (1.0 - dice).mean()


class _PatchSampler:
    """Random patches of one case; a foreground patch is centred (give or take a quarter
    patch) on a voxel of a randomly chosen class present in the case."""

    def __init__(self, case: Case, patch_size: tuple[int, int, int]) -> None:
        self.case = case
        self.patch = np.asarray(patch_size)
        self.shape = np.asarray(case.labels.shape)
        present = [int(v) for v in np.unique(case.labels) if v > 0]
        self.voxels = {value: np.argwhere(case.labels == value) for value in present}
        no_dispute = np.zeros(case.labels.shape, dtype=bool)
        self.disputed = no_dispute if case.disputed is None else case.disputed

    def sample(
        self, rng: np.random.Generator, foreground: bool
    ) -> tuple[Image, Labels, npt.NDArray[np.bool_]]:
        room = np.maximum(self.shape - self.patch, 0)
        if foreground and self.voxels:
            value = list(self.voxels)[int(rng.integers(len(self.voxels)))]
            voxels = self.voxels[value]
            centre = voxels[int(rng.integers(len(voxels)))]
            jitter = rng.integers(-(self.patch // 4), self.patch // 4 + 1)
            start = np.clip(centre - self.patch // 2 + jitter, 0, room)
        else:
            start = np.array([int(rng.integers(r + 1)) for r in room])
        box = tuple(slice(int(s), int(s + p)) for s, p in zip(start, self.patch, strict=True))
        image = self.case.image[(slice(None), *box)]
        labels, disputed = self.case.labels[box], self.disputed[box]
        short = self.patch - np.asarray(labels.shape)
        if short.any():  # smaller than a patch: pad as the inference pads (zeros)
            pad = [(0, int(s)) for s in short]
            image = np.pad(image, [(0, 0), *pad])
            labels, disputed = np.pad(labels, pad), np.pad(disputed, pad)
        return image, labels, disputed


def dice_scores(
    prediction: npt.NDArray[Any], truth: npt.NDArray[Any], labels: dict[str, int]
) -> dict[str, float]:
    """Dice per named label value (1.0 when both are empty)."""
    scores = {}
    for name, value in labels.items():
        predicted, expected = prediction == value, truth == value
        total = int(predicted.sum()) + int(expected.sum())
        overlap = int(np.logical_and(predicted, expected).sum())
        scores[name] = 1.0 if total == 0 else 2.0 * overlap / total
    return scores
