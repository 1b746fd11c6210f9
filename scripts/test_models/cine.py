"""The cardiac cine test model (``cmr_lv_resunet``): a 2D MONAI residual UNet (LV blood pool,
LV myocardium) trained on :mod:`dicom_node.phantom_cine` slices, exported as ONNX with a
spec.yaml, and scored through cmr_lv's measurement on held-out phantoms (EF, EDV, ESV).

The network takes what the node's runtime gives a 2D model: one slice ``(N, 1, x, y)`` (x the
column axis) of the phase volume as stored, z-scored with the phase volume's own mean and
standard deviation; it returns logits for background, blood pool and myocardium.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from dicom_node.phantom_cine import CinePhantom, make_cine
from pipelines.cmr_lv import lv_function
from test_models.monai_models import export_onnx

__all__ = ["build_cine_model"]

logger = logging.getLogger(__name__)

NAME = "cmr_lv_resunet"
LABELS = {1: "lv_blood_pool", 2: "lv_myocardium"}
PATCH = (96, 96)
ITERATIONS = 800
_ARGS = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2],
    "num_res_units": 2,
}


def _normalised(phantom: CinePhantom) -> list[npt.NDArray[np.float32]]:
    """Each phase volume z-scored by its own statistics, as the runtime's zscore does."""
    out = []
    for phase in phantom.cine.phases:
        values = phase.array.astype(np.float32)
        out.append((values - values.mean()) / max(float(values.std(ddof=1)), 1e-6))
    return out


def _slices(phantom: CinePhantom) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """All slices of all phases in the model's layout: images (S, x, y), labels (S, x, y)."""
    images = np.concatenate(_normalised(phantom)).transpose(0, 2, 1)
    labels = np.concatenate(phantom.truths).transpose(0, 2, 1).astype(np.int64)
    return np.ascontiguousarray(images), np.ascontiguousarray(labels)


def _train(network: nn.Module, phantoms: Sequence[CinePhantom], iterations: int) -> float:
    pairs = [_slices(phantom) for phantom in phantoms]
    images = torch.from_numpy(np.concatenate([p[0] for p in pairs]))[:, None]
    labels = torch.from_numpy(np.concatenate([p[1] for p in pairs]))
    rng = np.random.default_rng(21)
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / iterations))
    )
    network.train()
    losses = []
    for step in range(iterations):
        chosen = torch.from_numpy(rng.integers(0, len(images), 8))
        logits = network(images[chosen])
        target = labels[chosen]
        probabilities = torch.softmax(logits, 1)
        one_hot = F.one_hot(target, 3).movedim(-1, 1).to(logits.dtype)
        axes = (0, 2, 3)
        intersection = (probabilities * one_hot).sum(axes)[1:]
        total = (probabilities + one_hot).sum(axes)[1:]
        dice = (2.0 * intersection + 1e-5) / (total + 1e-5)
        loss = F.cross_entropy(logits, target) + (1.0 - dice).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, iterations // 5) == 0:
            logger.info("  step %d/%d loss %.3f", step + 1, iterations, np.mean(losses[-20:]))
    network.eval()
    return float(np.mean(losses[-max(1, iterations // 10) :]))


def _write_spec(path: Path) -> None:
    spec = {
        "version": "test-1",
        "modality": "MR",
        "description": "2D residual UNet (LV blood pool, LV myocardium) trained on dicom-node "
        "cine phantoms (test model, not for clinical use)",
        "labels": dict(LABELS),
        "input": {
            "spatial_dims": 2,
            # the phantoms' pixel size: other pixel sizes are resampled in-plane to it
            "spacing_mm": [2.5, 2.5, 10.0],
            "normalization": {"kind": "zscore"},
            "patch_size": [*PATCH, 1],
        },
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def _score(path: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """ONNX Runtime on every slice of every phase of held-out phantoms (whole slices, which
    are the patch size): the largest errors of EF (points), EDV and ESV (%) and ED/ES."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = {"ef_points": 0.0, "edv_percent": 0.0, "esv_percent": 0.0, "mass_percent": 0.0}
    phases_right = []
    for seed in seeds:
        phantom = make_cine(seed=seed)
        voxel_ml = phantom.cine.grid.voxel_volume_mm3 / 1000.0
        blood, muscle = [], []
        for phase in _normalised(phantom):
            batch = np.ascontiguousarray(phase.transpose(0, 2, 1))[:, None]
            (logits,) = session.run(None, {"image": batch})
            labels = np.argmax(logits, axis=1)
            blood.append(np.count_nonzero(labels == 1) * voxel_ml)
            muscle.append(np.count_nonzero(labels == 2) * voxel_ml)
        found, truth = lv_function(blood, muscle), phantom.truth_function
        worst["ef_points"] = max(worst["ef_points"], abs(found.ef_percent - truth["ef_percent"]))
        for key, value, true in (
            ("edv_percent", found.edv_ml, truth["edv_ml"]),
            ("esv_percent", found.esv_ml, truth["esv_ml"]),
            ("mass_percent", found.mass_g, truth["mass_g"]),
        ):
            worst[key] = max(worst[key], 100.0 * abs(value - true) / true)
        phases_right.append((found.ed, found.es) == (truth["ed_phase"], truth["es_phase"]))
    return {"errors": worst, "ed_es_right": phases_right}


def build_cine_model(
    out: Path, train_seeds: Sequence[int], test_seeds: Sequence[int], *, scale: float = 1.0
) -> dict[str, dict[str, Any]]:
    from monai.networks.nets.unet import UNet

    torch.manual_seed(31)
    network: nn.Module = UNet(**_ARGS)
    iterations = max(2, round(ITERATIONS * scale))
    logger.info("training %s (%d iterations)", NAME, iterations)
    loss = _train(network, [make_cine(seed=seed) for seed in train_seeds], iterations)
    folder = out / NAME
    export_onnx(folder / "model.onnx", network, PATCH)
    _write_spec(folder / "spec.yaml")
    return {NAME: _score(folder / "model.onnx", test_seeds) | {"loss": loss}}
