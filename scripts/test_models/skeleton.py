"""The AutoOrgan-style nnU-Net v2 task models (``autoorgan_organ``, ``autoorgan_vertebrae``,
``autoorgan_rib``), trained on :mod:`dicom_node.phantom_skeleton` phantoms and checked with
nnU-Net's own predictor and its ``nnUNetv2_predict`` command.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicom_node.phantom_skeleton import ORGAN_LABELS, RIB_LABELS, VERTEBRA_LABELS, make_skeleton
from pipelines import ImageVolume
from test_models import nnunet_folder as nf
from test_models.autoorgan import TASK_GROUPS
from test_models.training import dice_scores

__all__ = ["TASKS", "build_skeleton_models"]

logger = logging.getLogger(__name__)

# The labels each phantom truth holds, per task.
_DRAWN = {"organ": ORGAN_LABELS, "vertebrae": VERTEBRA_LABELS, "rib": RIB_LABELS}

TASKS = (
    # Organs and ribs have sides: those models must not be mirrored (what TotalSegmentator's
    # nnUNetTrainerNoMirroring records). Vertebrae are coded by intensity, so mirroring is
    # harmless and nnU-Net's test-time mirroring is exercised.
    nf.NnunetTask(
        task="organ",
        model_name="autoorgan_organ",
        dataset_id=901,
        dataset_title="AutoOrganOrgan",
        mirroring=False,
        patch_size=(64, 96, 96),
        training_patch=(16, 64, 64),
        features_per_stage=(16, 32, 64),
        iterations=600,
    ),
    nf.NnunetTask(
        task="vertebrae",
        model_name="autoorgan_vertebrae",
        dataset_id=902,
        dataset_title="AutoOrganVertebrae",
        mirroring=True,
        patch_size=(64, 96, 96),
        training_patch=(16, 32, 32),
        features_per_stage=(16, 32, 64),
        iterations=600,
        batch_size=4,
    ),
    nf.NnunetTask(
        task="rib",
        model_name="autoorgan_rib",
        dataset_id=903,
        dataset_title="AutoOrganRib",
        mirroring=False,
        patch_size=(64, 96, 96),
        training_patch=(16, 64, 64),
        features_per_stage=(16, 32, 64),
        iterations=600,
    ),
)


def build_skeleton_models(
    out: Path,
    train_seeds: Sequence[int],
    test_seeds: Sequence[int],
    *,
    check_cli: bool,
    scale: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Train and write the three results folders under `out` (an nnUNet_results folder);
    returns per model its Dice and whether the CLI's output matched the predictor's.
    `scale` shortens the training (a trial run)."""
    training = [make_skeleton(seed=seed) for seed in train_seeds]
    held_out = [make_skeleton(seed=seed) for seed in test_seeds]
    report = {}
    for full in TASKS:
        task = dataclasses.replace(full, iterations=max(2, round(full.iterations * scale)))
        started = time.perf_counter()
        folder = _build(out, task, training)
        report[task.model_name] = _check(out, folder, task, held_out, check_cli=check_cli)
        report[task.model_name]["seconds"] = time.perf_counter() - started
    return report


def _build(
    out: Path, task: nf.NnunetTask, training: list[tuple[ImageVolume, dict[str, Any]]]
) -> Path:
    return nf.train_task(
        out,
        task,
        TASK_GROUPS[task.task],
        [(volume.array, truth[task.task]) for volume, truth in training],
        training[0][0].spacing,
        description="synthetic torso CT (dicom_node.phantom_skeleton), AutoOrgan labels",
        dice_classes=tuple(sorted(_DRAWN[task.task].values())),
    )


def _check(
    out: Path,
    folder: Path,
    task: nf.NnunetTask,
    held_out: list[tuple[ImageVolume, dict[str, Any]]],
    *,
    check_cli: bool,
) -> dict[str, Any]:
    """Dice per drawn structure (worst over the held-out phantoms) by nnUNetPredictor, and
    the nnUNetv2_predict command's output on the first phantom compared with it."""
    logger.info("scoring %s", task.model_name)
    predicting = nf.predictor(folder)
    predictions = [nf.predict(predicting, volume) for volume, _ in held_out]
    worst: dict[str, float] = {}
    for prediction, (_, truth) in zip(predictions, held_out, strict=True):
        for name, value in dice_scores(prediction, truth[task.task], _DRAWN[task.task]).items():
            worst[name] = min(worst.get(name, 1.0), value)
    result: dict[str, Any] = {"dice": worst, "cli": "not run"}
    if check_cli:
        logger.info("running nnUNetv2_predict on %s", task.dataset_name)
        try:
            (cli,) = nf.cli_predict(out, task, [held_out[0][0]])
        except (OSError, subprocess.SubprocessError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            result["cli"] = f"failed: {exc} {stderr.decode(errors='replace')[-500:]}"
        else:
            differing = int(np.count_nonzero(cli != predictions[0]))
            result["cli"] = "identical" if differing == 0 else f"{differing} voxels differ"
    return result
