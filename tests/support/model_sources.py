"""Small model sources in the published on-disk formats, built in the test itself: an nnU-Net v2
results folder (and nnU-Net's own export zip of it), a MONAI UNet checkpoint, TorchScript and
ONNX files, each with the spec YAML `models install --spec` takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

# Names that are in pipelines.codes from the start (ct_basic's), so these tests do not depend
# on which structures the code table has gained since.
LABELS = {1: "lung_left", 2: "lung_right"}
TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
UNET_ARGS: dict[str, Any] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}
INPUT = {
    "spacing_mm": [1.5, 1.5, 2.0],
    "orientation": "RAS",
    "normalization": {"kind": "ct_window", "window": [-175, 250]},
    "patch_size": [16, 16, 16],
}


def write_nnunet_results(
    dataset_folder: Path,
    *,
    labels: dict[str, Any] | None = None,
    folds: tuple[int | str, ...] = (0,),
    folder_name: str = TRAINER_FOLDER,
) -> Path:
    """A results folder as nnU-Net v2 training leaves it, logs and validation included."""
    results = dataset_folder / folder_name
    results.mkdir(parents=True)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": labels or {"background": 0, "lung_left": 1, "lung_right": 2},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    (results / "dataset.json").write_text(json.dumps(dataset), encoding="utf-8")
    plans = {
        "dataset_name": dataset_folder.name,
        "plans_name": "nnUNetPlans",
        "configurations": {
            "3d_fullres": {"patch_size": [16, 24, 32], "spacing": [2.0, 1.5, 1.5]},
            "3d_lowres": {"inherits_from": "3d_fullres", "spacing": [4.0, 3.0, 3.0]},
        },
    }
    (results / "plans.json").write_text(json.dumps(plans), encoding="utf-8")
    (results / "dataset_fingerprint.json").write_text("{}", encoding="utf-8")
    for fold in folds:
        fold_folder = results / f"fold_{fold}"
        (fold_folder / "validation").mkdir(parents=True)
        checkpoint = {
            "network_weights": {"decoder.weight": torch.full((3, 4), float(len(str(fold))))},
            "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": "3d_fullres"},
        }
        torch.save(checkpoint, fold_folder / "checkpoint_final.pth")
        (fold_folder / "progress.png").write_bytes(b"\x89PNG not really")
        (fold_folder / "training_log.txt").write_text("epoch 0\n", encoding="utf-8")
        (fold_folder / "validation" / "summary.json").write_text("{}", encoding="utf-8")
    return results


def export_nnunet_zip(results_root: Path, dataset: str, output: Path) -> Path:
    """nnU-Net's own `nnUNetv2_export_model_to_zip` (export_pretrained_model) of fold 0."""
    env = dict(
        os.environ,
        nnUNet_results=str(results_root),
        nnUNet_raw=str(results_root),
        nnUNet_preprocessed=str(results_root),
    )
    script = (
        "import sys\n"
        "from nnunetv2.model_sharing.model_export import export_pretrained_model\n"
        "export_pretrained_model(sys.argv[1], sys.argv[2], configurations=('3d_fullres',),"
        " folds=(0,))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, dataset, str(output)],
        env=env,
        check=True,
        capture_output=True,
    )
    return output


def tiny_unet() -> torch.nn.Module:
    from monai.networks.nets.unet import UNet

    torch.manual_seed(0)
    network: torch.nn.Module = UNet(**UNET_ARGS)
    return network


def write_monai_checkpoint(path: Path, *, wrapped: bool = True) -> Path:
    """A training-style checkpoint: {"state_dict": {"module.<key>": ...}, "epoch": ...}
    (DataParallel prefix), or the bare state dict."""
    state = tiny_unet().state_dict()
    if wrapped:
        state = {f"module.{key}": value for key, value in state.items()}
        torch.save({"state_dict": state, "epoch": 7}, path)
    else:
        torch.save(state, path)
    return path


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 3, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # type: ignore[no-any-return]


def write_torchscript(path: Path) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+: TorchScript deprecated
        example = torch.zeros(1, 1, 8, 8, 8)
        traced = torch.jit.trace(_TinyNet(), example)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    return path


def write_onnx(path: Path) -> Path:
    """ONNX through the TorchScript-based exporter (`dynamo=False`; the dynamo exporter
    needs onnxscript, which is not installed)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            _TinyNet(),
            (torch.zeros(1, 1, 8, 8, 8),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "n", 2: "x", 3: "y", 4: "z"}},
        )
    return path


def write_spec(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
    return path


def monai_spec(path: Path, **changes: Any) -> Path:
    fields: dict[str, Any] = {
        "version": "2.1",
        "modality": "CT",
        "labels": dict(LABELS),
        "input": INPUT,
        "network": {"name": "UNet", "args": UNET_ARGS},
    }
    fields.update(changes)
    return write_spec(path, **{key: value for key, value in fields.items() if value is not None})


def plain_spec(path: Path) -> Path:
    """Spec for TorchScript and ONNX: labels and input."""
    return write_spec(path, modality="CT", labels=dict(LABELS), input=INPUT)


def zip_folder(folder: Path, output: Path) -> Path:
    with zipfile.ZipFile(output, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent).as_posix())
    return output
