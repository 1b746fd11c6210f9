"""The TotalSpineSeg-style nnU-Net v2 step models (``totalspineseg_step1``,
``totalspineseg_step2``), trained on :mod:`dicom_node.phantom_spine` phantoms and scored
through the whole method: step 1, the disc numbering, step 2 with the odd discs, the final map.

Step 1 takes the image; step 2 the image and the odd discs (a "noNorm" channel, 0/1). Both are
role "intermediate": their classes (TotalSpineSeg's nnunet_step1/step2 maps) are what
mr_spine turns into levels. Step 2 is not mirrored (odd and even vertebrae are told apart by
the disc above them); step 1 is, so nnU-Net's test-time mirroring is exercised.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicom_node.phantom_spine import make_spine, step_truths
from pipelines.mr_spine.labelling import (
    STEP1,
    STEP2,
    TSS_VALUES,
    final_label_map,
    label_discs,
    odd_disc_mask,
)
from test_models import nnunet_folder as nf
from test_models.training import dice_scores

__all__ = ["STEP_TASKS", "build_spine_models"]

logger = logging.getLogger(__name__)

_LANDMARKS = {"disc_C2_C3": 2, "disc_C7_T1": 3, "disc_T12_L1": 4, "disc_L5_S": 5}
# dataset.json labels: nnU-Net maps output channel k to value k, so the values run without
# gaps (TotalSpineSeg's step 2 does not use 6).
STEP1_LABELS = {"background": 0, "disc": 1, **_LANDMARKS, "vertebrae": 6, "vertebra_C1": 7}
STEP1_LABELS |= {"spinal_canal": 8, "spinal_cord": 9}
STEP2_LABELS = {"background": 0, "disc": 1, **_LANDMARKS, "unused": 6, "vertebrae_odd": 7}
STEP2_LABELS |= {"vertebrae_even": 8, "sacrum": 9, "spinal_canal": 10, "spinal_cord": 11}


def _step_task(
    step: int, channels: tuple[str, ...], mirroring: bool, description: str
) -> nf.NnunetTask:
    return nf.NnunetTask(
        task=f"step{step}",
        model_name=f"totalspineseg_step{step}",
        dataset_id=910 + step,
        dataset_title=f"TotalSpineSegStep{step}",
        mirroring=mirroring,
        patch_size=(16, 96, 64),  # the whole phantom
        training_patch=(16, 64, 64),
        features_per_stage=(16, 32, 64),
        iterations=600,
        channels=channels,
        modality="MR",
        description=description,
        role="intermediate",
    )


STEP_TASKS = (
    _step_task(
        1,
        ("MRI",),
        True,
        "TotalSpineSeg-style step 1 (discs, landmark discs, vertebrae, canal, cord) trained "
        "on dicom-node spine phantoms (test model, not for clinical use)",
    ),
    _step_task(
        2,
        ("MRI", "noNorm"),
        False,
        "TotalSpineSeg-style step 2 (image + odd discs: odd and even vertebrae, sacrum, discs,"
        " canal, cord) trained on dicom-node spine phantoms (test model)",
    ),
)
_NAMES = {value: name for name, value in TSS_VALUES.items()}


def build_spine_models(
    out: Path, train_seeds: Sequence[int], test_seeds: Sequence[int], *, scale: float = 1.0
) -> dict[str, dict[str, Any]]:
    """Train and write both results folders under `out` (an nnUNet_results folder); returns
    the worst Dice per final structure over the held-out phantoms, through the whole method."""
    training = [make_spine(seed=seed) for seed in train_seeds]
    truths = [step_truths(truth) for _, truth in training]
    folders = {}
    report: dict[str, dict[str, Any]] = {}
    for full, labels in zip(STEP_TASKS, (STEP1_LABELS, STEP2_LABELS), strict=True):
        task = dataclasses.replace(full, iterations=max(2, round(full.iterations * scale)))
        started = time.perf_counter()
        pairs = []
        for (volume, _), truth in zip(training, truths, strict=True):
            if task.task == "step1":
                pairs.append((volume.array, truth.step1))
            else:
                image = np.stack([volume.array.astype(np.float32), truth.odd_discs])
                pairs.append((image, truth.step2))
        folders[task.task] = _build(out, task, labels, pairs, training[0][0].spacing)
        report[task.model_name] = {"seconds": time.perf_counter() - started}
    report["mr_spine (both steps)"] = _score(folders, test_seeds)
    return report


def _build(
    out: Path,
    task: nf.NnunetTask,
    labels: dict[str, int],
    pairs: list[tuple[np.ndarray, np.ndarray]],
    spacing: tuple[float, float, float],
) -> Path:
    drawn = sorted({int(v) for _, truth in pairs for v in np.unique(truth) if v > 0})
    return nf.train_task(
        out,
        task,
        labels,
        pairs,
        spacing,
        description="synthetic lumbar spine T2 (dicom_node.phantom_spine)",
        dice_classes=tuple(drawn),
        orientation="PIR",
    )


def _score(folders: dict[str, Path], test_seeds: Sequence[int]) -> dict[str, Any]:
    """Both steps with nnUNetPredictor and mr_spine's numbering in between, on held-out
    phantoms: the worst Dice per final structure and whether every level was right."""
    logger.info("scoring the spine steps")
    step1, step2 = nf.predictor(folders["step1"]), nf.predictor(folders["step2"])
    worst: dict[str, float] = {}
    anchors = []
    for seed in test_seeds:
        volume, truth = make_spine(seed=seed)
        first = nf.predict(step1, volume)
        odd = odd_disc_mask(label_discs(first, volume, STEP1)).astype(np.float32)
        second = nf.predict(step2, volume, (odd,))
        final = final_label_map(second, volume, STEP2)
        anchors.append(final.anchors)
        present = {_NAMES[int(v)]: int(v) for v in np.unique(truth) if v > 0}
        for name, value in dice_scores(final.label_map, truth, present).items():
            worst[name] = min(worst.get(name, 1.0), value)
    return {"dice": worst, "anchors": anchors}
