"""What an install source is: an nnU-Net results folder, one weight file (MONAI checkpoint,
TorchScript, ONNX), a folder already holding our manifest, or a zip of any of these.

Detection reads names and zip directories only (no torch import): a PyTorch file written by
`torch.save` or `torch.jit.save` is a zip with one top folder holding `data.pkl`
(TorchScript archives also hold `code/`); an older `torch.save` file is a plain pickle.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipelines.models.errors import ModelInstallError
from pipelines.models.manifest import MANIFEST_NAME, ModelFormat
from pipelines.models.nnunet import is_results_folder

__all__ = [
    "FileSource",
    "NnunetSource",
    "PreparedSource",
    "Source",
    "extract_archive",
    "is_archive",
    "locate_source",
    "weight_file_format",
]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
_SPEC_NAMES = ("spec.yaml", "spec.yml")
# Left by archivers, never part of a model.
_IGNORED = ("__MACOSX", ".DS_Store")


@dataclass(frozen=True)
class NnunetSource:
    folder: Path  # the Trainer__Plans__Configuration folder


@dataclass(frozen=True)
class FileSource:
    path: Path
    format: ModelFormat
    spec: Path | None = None  # a spec.yaml found beside the file in a folder or archive


@dataclass(frozen=True)
class PreparedSource:
    folder: Path  # holds manifest.yaml and the files it lists


Source = NnunetSource | FileSource | PreparedSource


def _torch_archive_format(names: list[str]) -> ModelFormat | None:
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1:
        return None
    top = tops.pop()
    if f"{top}/data.pkl" not in names:
        return None
    if any(name.startswith(f"{top}/code/") for name in names):
        return ModelFormat.TORCHSCRIPT
    return ModelFormat.MONAI


def _zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelInstallError(f"cannot read zip {path}: {exc}") from exc


def weight_file_format(path: Path) -> ModelFormat | None:
    """The format of a single weight file, or None when it is none we know."""
    if path.suffix.lower() == ".onnx":
        return ModelFormat.ONNX
    names = _zip_names(path)
    if names is not None:
        return _torch_archive_format(names)
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        return ModelFormat.MONAI  # a legacy (pickle) torch.save file
    return None


def is_archive(path: Path) -> bool:
    """A zip that packs a model (not itself a PyTorch file, which is a zip too)."""
    names = _zip_names(path)
    return names is not None and _torch_archive_format(names) is None


def _unsafe_member(name: str) -> bool:
    posix = name.replace("\\", "/")
    return (
        posix.startswith("/")
        or (len(posix) > 1 and posix[1] == ":")
        or ".." in PurePosixPath(posix).parts
    )


def extract_archive(path: Path, into: Path) -> None:
    """Unpack a zip into `into`, refusing it whole if any member would land outside."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        unsafe = [member.filename for member in members if _unsafe_member(member.filename)]
        if unsafe:
            raise ModelInstallError(
                f"{path}: member {unsafe[0]!r} points outside the archive; the zip is refused"
            )
        needed = sum(member.file_size for member in members)
        free = shutil.disk_usage(into).free
        if needed > free:
            raise ModelInstallError(
                f"{path} unpacks to {needed // 2**20} MiB; {free // 2**20} MiB free in {into}"
            )
        archive.extractall(into)


def _entries(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.name not in _IGNORED)


def _descend(folder: Path) -> Path:
    """Into a lone sub-folder (archives often wrap their content in one)."""
    while True:
        entries = _entries(folder)
        if len(entries) != 1 or not entries[0].is_dir() or (folder / MANIFEST_NAME).exists():
            return folder
        if is_results_folder(folder):
            return folder
        folder = entries[0]


def locate_source(path: Path, forced: ModelFormat | None) -> Source:
    """The model in a file or (unpacked) folder; `forced` settles an ambiguous format."""
    if path.is_file():
        detected = weight_file_format(path)
        if forced is None and detected is None:
            raise ModelInstallError(
                f"{path} is not a model file this node knows (.onnx, or a PyTorch .pt/.pth/.ckpt);"
                " give --format to say what it is"
            )
        return FileSource(path, forced or detected or ModelFormat.MONAI)
    folder = _descend(path)
    if (folder / MANIFEST_NAME).is_file():
        return PreparedSource(folder)
    if forced in (None, ModelFormat.NNUNET_V2):
        if is_results_folder(folder):
            return NnunetSource(folder)
        results = [
            child for child in _entries(folder) if child.is_dir() and is_results_folder(child)
        ]
        if len(results) == 1:
            return NnunetSource(results[0])
        if results:
            names = ", ".join(child.name for child in results)
            raise ModelInstallError(
                f"{folder} holds {len(results)} nnU-Net results folders ({names}); install one of"
                " them (unpack a zip first)"
            )
        if forced is ModelFormat.NNUNET_V2:
            raise ModelInstallError(f"{folder} holds no nnU-Net v2 results folder")
    return _single_weight_file(folder, forced)


def _single_weight_file(folder: Path, forced: ModelFormat | None) -> FileSource:
    candidates = [
        (child, found)
        for child in _entries(folder)
        if child.is_file() and (found := weight_file_format(child)) is not None
    ]
    if forced is not None:
        candidates = [(child, found) for child, found in candidates if found is forced]
    if not candidates:
        kind = f"{forced} " if forced else ""
        raise ModelInstallError(
            f"no {kind}model found in {folder}: expected an nnU-Net v2 results folder, a"
            f" {MANIFEST_NAME}, or one weight file (.onnx, .pt, .pth, .ckpt)"
        )
    if len(candidates) > 1:
        names = ", ".join(child.name for child, _ in candidates)
        raise ModelInstallError(
            f"{folder} holds several weight files ({names}); install one file, or give --format"
        )
    path, found = candidates[0]
    spec = next((folder / name for name in _SPEC_NAMES if (folder / name).is_file()), None)
    return FileSource(path, found, spec)
