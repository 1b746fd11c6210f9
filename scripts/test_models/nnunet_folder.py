"""nnU-Net v2 results folders for the AutoOrgan-style task models, written as a real
``nnUNetv2_plan_and_preprocess`` + ``nnUNetv2_train`` run leaves them, in every field that
inference reads (``nnUNetPredictor.initialize_from_trained_model_folder``, nnunetv2 2.8):

    <results>/DatasetNNN_Name/<Trainer>__nnUNetPlans__3d_fullres/
        dataset.json                 labels (name -> value), channel_names, file_ending, ...
        plans.json                   ExperimentPlanner's layout: one 3d_fullres configuration
        dataset_fingerprint.json     what the planner read (inference does not)
        fold_0/checkpoint_final.pth  network_weights, init_args, trainer_name, mirroring axes

The plans are the default planner's (spacing, CTNormalization with the foreground intensity
statistics of the training images, the default resampling functions, a PlainConvUNet), with
a deliberately tiny architecture (BatchNorm instead of InstanceNorm: the network then does
not care how large a patch it sees, so it trains on small patches and predicts on the whole
phantom). The network is built by the trainer's own ``build_network_architecture`` from
these plans and trained on images preprocessed by nnU-Net's ``DefaultPreprocessor`` (crop to
non-zero, CTNormalization), exactly the input the predictor gives it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
import torch
import yaml
from torch import nn

from pipelines import ImageVolume

__all__ = [
    "CONFIGURATION",
    "PLANS_NAME",
    "NnunetTask",
    "build_network",
    "cli_predict",
    "dataset_json",
    "fingerprint",
    "make_plans",
    "predictor",
    "preprocess",
    "train_task",
    "write_results_folder",
    "write_spec",
]

logger = logging.getLogger(__name__)

PLANS_NAME = "nnUNetPlans"
CONFIGURATION = "3d_fullres"
# nnU-Net's epoch is 250 iterations (nnUNetTrainer.num_iterations_per_epoch).
_ITERATIONS_PER_EPOCH = 250


@dataclass(frozen=True)
class NnunetTask:
    """One task model: its results folder and its (tiny) architecture and training."""

    task: str  # phantom_skeleton task ("organ", "vertebrae", "rib")
    model_name: str  # the name the node installs it under
    dataset_id: int
    dataset_title: str
    mirroring: bool  # at training and in inference (test-time augmentation)
    patch_size: tuple[int, int, int]  # (z, y, x), nnU-Net's order; the inference tile
    training_patch: tuple[int, int, int]  # smaller: no norm statistics tie it to the tile
    features_per_stage: tuple[int, ...]
    iterations: int
    batch_size: int = 2
    learning_rate: float = 1e-2
    n_conv_per_stage: int = 2
    # nnU-Net channel names (dataset.json channel_names); the name picks the normalization:
    # "CT" CTNormalization, "noNorm" none, anything else ZScoreNormalization.
    channels: tuple[str, ...] = ("CT",)
    modality: str = "CT"
    description: str = ""  # spec.yaml's; empty: the AutoOrgan-style text
    role: str = "segments"  # spec.yaml's role (intermediate: classes a pipeline interprets)

    @property
    def dataset_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.dataset_title}"

    @property
    def folder_name(self) -> str:
        return f"{self.trainer}__{PLANS_NAME}__{CONFIGURATION}"

    @property
    def trainer(self) -> str:
        """Always nnU-Net's default trainer: nnunetv2 finds a trainer class by walking its
        package, and on the way to any variant (nnUNetTrainerNoMirroring too) it imports the
        Primus trainers, hence timm and torchvision, which fail to import here."""
        return "nnUNetTrainer"

    @property
    def mirror_axes(self) -> tuple[int, ...] | None:
        """nnUNetTrainer's axes for 3D (all three), or None as nnUNetTrainerNoMirroring
        records it: a model whose labels have sides must not be mirrored."""
        return (0, 1, 2) if self.mirroring else None


def dataset_json(
    labels: dict[str, int],
    num_training: int,
    channels: tuple[str, ...] = ("CT",),
    description: str = "synthetic torso CT (dicom_node.phantom_skeleton), AutoOrgan labels",
) -> dict[str, Any]:
    """The raw dataset's dataset.json (nnU-Net v2 dataset format), which training copies."""
    return {
        "channel_names": {str(index): name for index, name in enumerate(channels)},
        "labels": labels,
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "name": "dicom-node test phantoms",
        "description": description,
    }


def _channels_first(image: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """A (z, y, x) image as (1, z, y, x); a (C, z, y, x) one as it is."""
    array = np.asarray(image)
    return array[np.newaxis] if array.ndim == 3 else array


_NORMALIZATION = {"CT": "CTNormalization", "noNorm": "NoNormalization"}


def normalization_schemes(channels: tuple[str, ...]) -> list[str]:
    """nnU-Net's choice per channel name (ExperimentPlanner.determine_normalization_scheme)."""
    return [_NORMALIZATION.get(name, "ZScoreNormalization") for name in channels]


def fingerprint(
    cases: list[tuple[npt.NDArray[np.generic], npt.NDArray[np.integer]]],
    spacing: tuple[float, float, float],
) -> dict[str, Any]:
    """The dataset fingerprint (DatasetFingerprintExtractor.run's fields): the intensity
    statistics of all foreground voxels per channel (nnU-Net samples 10^8 of them; these are
    fewer). Images are (z, y, x) or (C, z, y, x)."""
    images = [_channels_first(image) for image, _ in cases]
    per_channel = {}
    for channel in range(images[0].shape[0]):
        foreground = np.concatenate(
            [image[channel][labels > 0] for image, (_, labels) in zip(images, cases, strict=True)]
        )
        values = foreground.astype(np.float64)
        low, median, high = np.percentile(values, (0.5, 50.0, 99.5))
        per_channel[str(channel)] = {
            "max": float(values.max()),
            "mean": float(values.mean()),
            "median": float(median),
            "min": float(values.min()),
            "percentile_00_5": float(low),
            "percentile_99_5": float(high),
            "std": float(values.std()),
        }
    shape = [int(s) for s in images[0].shape[1:]]
    return {
        "foreground_intensity_properties_per_channel": per_channel,
        "median_relative_size_after_cropping": 1.0,
        "shapes_after_crop": [shape] * len(cases),
        "spacings": [list(spacing)] * len(cases),
    }


def make_plans(
    task: NnunetTask,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    intensities: dict[str, Any],
) -> dict[str, Any]:
    """plans.json as ExperimentPlanner.plan_experiment writes it, 3d_fullres only, with the
    task's small PlainConvUNet; `shape` and `spacing` in (z, y, x) order."""
    stages = len(task.features_per_stage)
    architecture = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": stages,
            "features_per_stage": list(task.features_per_stage),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * stages,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1),
            "n_conv_per_stage": [task.n_conv_per_stage] * stages,
            "n_conv_per_stage_decoder": [task.n_conv_per_stage] * (stages - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.batchnorm.BatchNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    resampling = {"order_z": 0, "force_separate_z": None}
    configuration = {
        "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": list(task.patch_size),
        "median_image_size_in_voxels": [float(s) for s in shape],
        "spacing": list(spacing),
        "normalization_schemes": normalization_schemes(task.channels),
        "use_mask_for_norm": [False] * len(task.channels),
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **resampling},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **resampling},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **resampling},
        "architecture": architecture,
        "batch_dice": False,
    }
    return {
        "dataset_name": task.dataset_name,
        "plans_name": PLANS_NAME,
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": list(shape),
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": intensities,
    }


def preprocess(
    image: npt.NDArray[np.generic],
    labels: npt.NDArray[np.integer] | None,
    spacing: tuple[float, float, float],
    plans: dict[str, Any],
    dataset: dict[str, Any],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
    """nnU-Net's DefaultPreprocessor on one (z, y, x) or (C, z, y, x) image: ``(C, z, y, x)``
    float32 data and labels (outside-the-crop -1 set to background, as nnU-Net's
    RemoveLabelTansform does)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    segmentation = None if labels is None else np.asarray(labels, dtype=np.int16)[np.newaxis]
    data, seg, _ = DefaultPreprocessor(verbose=False).run_case_npy(
        _channels_first(image).astype(np.float32),
        segmentation,
        {"spacing": list(spacing)},
        manager,
        manager.get_configuration(CONFIGURATION),
        dataset,
    )
    if seg is None:
        return data, None
    return data.astype(np.float32), np.maximum(seg[0], 0).astype(np.int64)


def build_network(plans: dict[str, Any], dataset: dict[str, Any], trainer: str) -> nn.Module:
    """The network as nnU-Net builds it for training and inference (deep supervision off:
    the same weights, one output)."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    trainer_class = recursive_find_python_class(
        os.path.join(nnunetv2.__path__[0], "training", "nnUNetTrainer"),
        trainer,
        "nnunetv2.training.nnUNetTrainer",
    )
    manager = PlansManager(plans)
    configuration = manager.get_configuration(CONFIGURATION)
    channels = determine_num_input_channels(manager, configuration, dataset)
    heads = manager.get_label_manager(dataset).num_segmentation_heads
    network: nn.Module = trainer_class.build_network_architecture(
        manager, configuration, channels, heads, enable_deep_supervision=False
    )
    return network


def write_results_folder(
    root: Path,
    task: NnunetTask,
    plans: dict[str, Any],
    dataset: dict[str, Any],
    fingerprint_json: dict[str, Any],
    network: nn.Module,
    final_loss: float,
) -> Path:
    """Write the results folder under `root` (an nnUNet_results folder); returns it."""
    folder = root / task.dataset_name / task.folder_name
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("dataset.json", dataset),
        ("plans.json", plans),
        ("dataset_fingerprint.json", fingerprint_json),
    ):
        (folder / name).write_text(json.dumps(content, indent=4) + "\n", encoding="utf-8")
    epochs = max(1, math.ceil(task.iterations / _ITERATIONS_PER_EPOCH))
    # nnUNetTrainer.save_checkpoint's keys; the optimizer state is left out (inference never
    # reads it and it would double the file).
    checkpoint = {
        "network_weights": network.state_dict(),  # shared tensors stay shared in the file
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {"train_losses": [final_loss] * epochs},
        "_best_ema": None,
        "current_epoch": epochs,
        "init_args": {
            "plans": plans,
            "configuration": CONFIGURATION,
            "fold": 0,
            "dataset_json": dataset,
            "device": torch.device("cpu"),
        },
        "trainer_name": task.trainer,
        "inference_allowed_mirroring_axes": task.mirror_axes,
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def write_spec(root: Path, task: NnunetTask, orientation: str = "LPS") -> Path:
    """spec.yaml beside the results folder, for `dicom-node models install --spec`: version,
    modality, and the orientation the arrays were trained in (the phantoms' storage: LPS for
    the axial ones)."""
    spec: dict[str, Any] = {
        "version": "test-1",
        "modality": task.modality,
        "description": task.description
        or f"AutoOrgan-style {task.task} task model trained on dicom-node skeleton"
        " phantoms (test model, not for clinical use)",
        "input": {"orientation": orientation},
    }
    if task.role != "segments":
        spec["role"] = task.role
    path = root / task.dataset_name / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def predictor(folder: Path) -> Any:
    """nnUNetPredictor on the results folder, CPU, the CLI's defaults (tile step 0.5,
    Gaussian weighting, mirroring where the checkpoint allows it)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predicting = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=True,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predicting.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    return predicting


def predict(
    predicting: Any, volume: ImageVolume, extra: tuple[npt.NDArray[np.generic], ...] = ()
) -> npt.NDArray[np.uint8]:
    """Labels of `volume` (as stored, (z, y, x)) and `extra` channels on its grid by
    predict_single_npy_array."""
    image = np.stack([np.asarray(a, dtype=np.float32) for a in (volume.array, *extra)])
    labels = predicting.predict_single_npy_array(image, {"spacing": list(volume.spacing)})
    return np.asarray(labels, dtype=np.uint8)


def write_nifti(path: Path, array: npt.NDArray[np.generic], volume: ImageVolume) -> None:
    """`array` on `volume`'s grid as NIfTI (SimpleITK turns LPS into the file's RAS)."""
    image: Any = sitk.GetImageFromArray(np.asarray(array))  # [z, y, x] = ITK (x, y, z)
    image.SetSpacing([volume.spacing[2], volume.spacing[1], volume.spacing[0]])
    image.SetOrigin(list(volume.origin))
    axes = np.column_stack([volume.direction[2], volume.direction[1], volume.direction[0]])
    image.SetDirection(axes.ravel().tolist())
    sitk.WriteImage(image, str(path), useCompression=True)


def cli_predict(
    results_root: Path, task: NnunetTask, volumes: list[ImageVolume]
) -> list[npt.NDArray[np.uint8]]:
    """Labels of `volumes` by the ``nnUNetv2_predict`` command on NIfTI files (CPU)."""
    command = Path(sys.executable).with_name("nnUNetv2_predict")
    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = Path(scratch, "in"), Path(scratch, "out")
        inputs.mkdir()
        for index, volume in enumerate(volumes):
            write_nifti(inputs / f"case{index:03d}_0000.nii.gz", volume.array, volume)
        environment = {**os.environ, "nnUNet_results": str(results_root.resolve())}
        environment.setdefault("nnUNet_raw", scratch)
        environment.setdefault("nnUNet_preprocessed", scratch)
        subprocess.run(
            [
                str(command),
                *("-i", str(inputs), "-o", str(outputs), "-d", task.dataset_name),
                *("-tr", task.trainer, "-p", PLANS_NAME, "-c", CONFIGURATION, "-f", "0"),
                *("-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar"),
            ],
            check=True,
            env=environment,
            capture_output=True,
            timeout=600,
        )
        return [
            sitk.GetArrayFromImage(sitk.ReadImage(str(outputs / f"case{index:03d}.nii.gz"))).astype(
                np.uint8
            )
            for index in range(len(volumes))
        ]


def train_task(
    out: Path,
    task: NnunetTask,
    labels: dict[str, int],
    pairs: list[tuple[npt.NDArray[np.generic], npt.NDArray[np.integer]]],
    spacing: tuple[float, float, float],
    *,
    description: str,
    dice_classes: tuple[int, ...],
    orientation: str = "LPS",
) -> Path:
    """Plan, preprocess, train and write one task's results folder (and its spec.yaml) under
    `out` from (image, labels) pairs: images (z, y, x) or (C, z, y, x) as stored."""
    from test_models.training import Case, TrainingPlan, train

    dataset = dataset_json(labels, len(pairs), task.channels, description)
    found = fingerprint(pairs, spacing)
    depth, rows, columns = (int(size) for size in pairs[0][1].shape)
    intensities = found["foreground_intensity_properties_per_channel"]
    plans = make_plans(task, (depth, rows, columns), spacing, intensities)
    cases = []
    for image, truth in pairs:
        data, seg = preprocess(image, truth, spacing, plans, dataset)
        assert seg is not None
        cases.append(Case(data, seg))
    torch.manual_seed(task.dataset_id)
    network = build_network(plans, dataset, task.trainer)
    plan = TrainingPlan(
        patch_size=task.training_patch,
        iterations=task.iterations,
        classes=len(labels),
        dice_classes=dice_classes,
        batch_size=task.batch_size,
        learning_rate=task.learning_rate,
        mirror_axes=task.mirror_axes or (),
        seed=task.dataset_id,
    )
    logger.info("training %s (%d iterations)", task.model_name, task.iterations)
    loss = train(network, cases, plan)
    write_spec(out, task, orientation=orientation)
    return write_results_folder(out, task, plans, dataset, found, network, loss)
