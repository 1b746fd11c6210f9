"""Reading an nnU-Net v2 results folder (`Trainer__Plans__Configuration/` with plans.json,
dataset.json and fold_N/checkpoint_*.pth, as nnU-Net v2 writes it and
`nnUNetv2_export_model_to_zip` packs it) into what the manifest needs.

Only what inference reads is taken (nnUNetPredictor.initialize_from_trained_model_folder:
dataset.json, plans.json and each fold's checkpoint); training logs, validation outputs and
the dataset fingerprint stay behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines.models.errors import ModelInstallError
from pipelines.models.manifest import NnunetSpec

__all__ = ["NnunetFolder", "is_results_folder", "read_results_folder"]

logger = logging.getLogger(__name__)

# Checkpoints nnU-Net writes, in order of preference.
_CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth")


@dataclass(frozen=True)
class NnunetFolder:
    nnunet: NnunetSpec
    labels: dict[int, str]
    modality: str | None
    spatial_dims: Literal[2, 3]
    patch_size: tuple[int, int, int]  # (x, y, z); z = 1 for 2D configurations
    files: tuple[tuple[Path, str], ...]  # (file, path relative to the results folder)


def is_results_folder(folder: Path) -> bool:
    return (
        (folder / "plans.json").is_file()
        and (folder / "dataset.json").is_file()
        and any(child.is_dir() for child in folder.glob("fold_*"))
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelInstallError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelInstallError(f"{path} is not a JSON object")
    return data


def _labels(dataset: dict[str, Any], path: Path) -> dict[int, str]:
    """dataset.json "labels" (name -> value) as value -> name, without background (0) and
    nnU-Net's "ignore" label (training only; never predicted)."""
    raw = dataset.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise ModelInstallError(f'{path} has no "labels" mapping')
    labels: dict[int, str] = {}
    for name, value in raw.items():
        if isinstance(value, list | tuple):
            raise ModelInstallError(
                f"{path}: label {name!r} is a region (a list of values {value}); region-based"
                " nnU-Net models are not supported"
            )
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelInstallError(f"{path}: label {name!r} has the value {value!r}, not a number")
        if value == 0 or name == "ignore":
            continue
        if value in labels:
            raise ModelInstallError(f"{path}: value {value} is named twice")
        labels[value] = name
    return labels


def _modality(dataset: dict[str, Any]) -> str | None:
    # nnU-Net picks CT normalisation when channel 0 is named "CT" (v1 used "modality").
    channels = dataset.get("channel_names") or dataset.get("modality") or {}
    first = channels.get("0") if isinstance(channels, dict) else None
    return "CT" if isinstance(first, str) and first.strip().upper() == "CT" else None


def _configuration(plans: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """A configuration of plans.json with what it inherits (3d_cascade_fullres, ...)."""
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or name not in configurations:
        known = ", ".join(sorted(configurations)) if isinstance(configurations, dict) else "none"
        raise ModelInstallError(f"{path} has no configuration {name!r} (has: {known})")
    merged: dict[str, Any] = {}
    seen: set[str] = set()
    current: str | None = name
    while current is not None and current not in seen and current in configurations:
        seen.add(current)
        merged = {**configurations[current], **merged}
        parent = configurations[current].get("inherits_from")
        current = parent if isinstance(parent, str) else None
    return merged


def _fold_name(folder: Path) -> int | str | None:
    suffix = folder.name.removeprefix("fold_")
    if suffix == "all":
        return "all"
    return int(suffix) if suffix.isdigit() else None


def _folds(folder: Path) -> tuple[str, list[int | str]]:
    """The checkpoint to use and the folds that have it (final if any fold has it, else best)."""
    found: dict[int | str, set[str]] = {}
    for child in sorted(folder.glob("fold_*")):
        fold = _fold_name(child)
        if fold is not None and child.is_dir():
            found[fold] = {name for name in _CHECKPOINTS if (child / name).is_file()}
    for checkpoint in _CHECKPOINTS:
        folds = [fold for fold, names in found.items() if checkpoint in names]
        if folds:
            skipped = sorted(str(fold) for fold in found if fold not in folds)
            if skipped:
                logger.warning(
                    "%s: fold(s) %s have no %s and are left out",
                    folder,
                    ", ".join(skipped),
                    checkpoint,
                )
            return checkpoint, sorted(folds, key=lambda fold: (isinstance(fold, str), str(fold)))
    raise ModelInstallError(f"{folder}: no fold_N folder holds {' or '.join(_CHECKPOINTS)}")


def read_results_folder(folder: Path) -> NnunetFolder:
    parts = folder.name.split("__")
    if len(parts) != 3 or not all(parts):
        raise ModelInstallError(
            f"{folder.name!r} is not named Trainer__Plans__Configuration, as nnU-Net v2 names"
            " its results folders"
        )
    trainer, plans_name, configuration = parts
    dataset = _read_json(folder / "dataset.json")
    plans = _read_json(folder / "plans.json")
    settings = _configuration(plans, configuration, folder / "plans.json")
    checkpoint, folds = _folds(folder)
    patch = settings.get("patch_size")
    if not isinstance(patch, list) or len(patch) not in (2, 3):
        raise ModelInstallError(f"{folder / 'plans.json'}: {configuration} has no patch_size")
    # nnU-Net's array axes are (z, y, x) for images read by SimpleITK; ours are (x, y, z).
    patch_xyz = (int(patch[-1]), int(patch[-2]), int(patch[0]) if len(patch) == 3 else 1)
    files = [(folder / "dataset.json", "dataset.json"), (folder / "plans.json", "plans.json")]
    files += [(folder / f"fold_{fold}" / checkpoint, f"fold_{fold}/{checkpoint}") for fold in folds]
    return NnunetFolder(
        nnunet=NnunetSpec(
            configuration=configuration,
            trainer=trainer,
            plans=plans_name,
            folds=tuple(folds),
            checkpoint=checkpoint,
        ),
        labels=_labels(dataset, folder / "dataset.json"),
        modality=_modality(dataset),
        spatial_dims=3 if len(patch) == 3 else 2,
        patch_size=patch_xyz,
        files=tuple(files),
    )
