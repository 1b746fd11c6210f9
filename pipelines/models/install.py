"""Installing a model: find it in the source, complete its manifest from the spec, copy what
inference needs (hashing while copying) into `<root>/.install-<random>/`, check that the
weights open, then rename the folder to `<root>/<name>/`.

A failed install leaves nothing behind; readers never see a half-copied model, because the
folder appears under its name only once complete (a rename within one filesystem).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipelines.codes import SEGMENT_CODES
from pipelines.models.checks import check_monai, check_onnx, check_torchscript
from pipelines.models.errors import ModelError, ModelInstallError
from pipelines.models.manifest import (
    MANIFEST_NAME,
    NAME_PATTERN,
    InputSpec,
    ModelFormat,
    ModelManifest,
    WeightFile,
    describe_validation_error,
    manifest_yaml,
    read_manifest,
)
from pipelines.models.nnunet import read_results_folder
from pipelines.models.sources import (
    FileSource,
    NnunetSource,
    PreparedSource,
    Source,
    extract_archive,
    is_archive,
    locate_source,
)
from pipelines.models.spec import ModelSpec, read_spec

__all__ = ["check_name", "install_model", "sha256_of", "uncoded_labels"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Spec fields each format needs, and those it cannot use.
_SPEC_NEEDS: dict[ModelFormat, tuple[str, ...]] = {
    ModelFormat.NNUNET_V2: (),
    ModelFormat.MONAI: ("network", "labels", "input"),
    ModelFormat.TORCHSCRIPT: ("labels", "input"),
    ModelFormat.ONNX: ("labels", "input"),
}
_SPEC_REFUSES: dict[ModelFormat, tuple[str, ...]] = {
    ModelFormat.NNUNET_V2: ("network", "output"),
    ModelFormat.MONAI: (),
    ModelFormat.TORCHSCRIPT: ("network",),
    ModelFormat.ONNX: ("network",),
}
_WEIGHT_NAMES = {ModelFormat.TORCHSCRIPT: "model.pt", ModelFormat.ONNX: "model.onnx"}

Copies = list[tuple[Path, str]]  # (source file, path relative to the model folder)


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ModelInstallError(
            f"model name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . - and not start"
            " with a dot"
        )
    return name


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def uncoded_labels(labels: dict[int, str]) -> list[str]:
    """Labels whose name has no entry in the code table (a SEG could not code them)."""
    return [
        f"{value} {name}" for value, name in sorted(labels.items()) if name not in SEGMENT_CODES
    ]


def _copy_hashed(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _scratch(root: Path, kind: str) -> Path:
    path = root / f".{kind}-{secrets.token_hex(6)}"
    path.mkdir()
    return path


def _version(spec: ModelSpec | None, version: str | None, default: str) -> str:
    if spec is not None and spec.version is not None:
        if version is not None and version != spec.version:
            raise ModelInstallError(
                f"version given twice: the spec says {spec.version}, --version says {version}"
            )
        return spec.version
    return version or default


def _check_spec_fields(spec: ModelSpec | None, model_format: ModelFormat, what: str) -> None:
    needed = _SPEC_NEEDS[model_format]
    given = spec.given() if spec is not None else []
    missing = [field for field in needed if field not in given]
    if missing and spec is None:
        raise ModelInstallError(f"{what} needs --spec FILE.yaml with: {', '.join(missing)}")
    if missing:
        raise ModelInstallError(f"{what} needs these fields in its spec: {', '.join(missing)}")
    refused = [field for field in _SPEC_REFUSES[model_format] if field in given]
    if refused:
        raise ModelInstallError(
            f"spec field(s) {', '.join(refused)} do not apply to {model_format} models"
        )


def _input(raw: dict[str, Any], defaults: dict[str, Any] | None = None) -> InputSpec:
    try:
        return InputSpec.model_validate({**(defaults or {}), **raw})
    except ValidationError as exc:
        raise ModelInstallError(f"spec input: {describe_validation_error(exc)}") from exc


def _plan_nnunet(source: NnunetSource, spec: ModelSpec | None) -> tuple[dict[str, Any], Copies]:
    _check_spec_fields(spec, ModelFormat.NNUNET_V2, "an nnU-Net v2 model")
    found = read_results_folder(source.folder)
    labels = dict(found.labels)
    if spec is not None and spec.labels is not None:
        unknown = sorted(set(spec.labels) - set(labels))
        if unknown:
            raise ModelInstallError(
                f"spec labels name values dataset.json does not have: {unknown}"
            )
        labels.update(spec.labels)  # renames, value by value
    fields: dict[str, Any] = {
        "format": ModelFormat.NNUNET_V2,
        "labels": labels,
        "modality": found.modality,
        "nnunet": found.nnunet,
    }
    if spec is not None and spec.input is not None:
        # nnU-Net preprocesses itself; only the orientation matters, the rest is for reference.
        defaults = {
            "spatial_dims": found.spatial_dims,
            "patch_size": found.patch_size,
            "normalization": {"kind": "none"},
        }
        fields["input"] = _input(spec.input, defaults)
    copies = [(path, f"{found.nnunet.results_folder}/{relative}") for path, relative in found.files]
    return fields, copies


def _plan_file(source: FileSource, spec: ModelSpec | None) -> tuple[dict[str, Any], Copies]:
    what = {
        ModelFormat.MONAI: "a MONAI checkpoint",
        ModelFormat.TORCHSCRIPT: "a TorchScript model",
        ModelFormat.ONNX: "an ONNX model",
    }.get(source.format)
    if what is None:
        raise ModelInstallError(f"{source.path.name} is one file, not an nnU-Net results folder")
    _check_spec_fields(spec, source.format, what)
    # _check_spec_fields made sure of both.
    assert spec is not None
    assert spec.input is not None
    fields: dict[str, Any] = {
        "format": source.format,
        "labels": spec.labels,
        "input": _input(spec.input),
        "network": spec.network,
    }
    if spec.output is not None:
        fields["output"] = spec.output
    name = _WEIGHT_NAMES.get(source.format, source.path.name)
    return fields, [(source.path, f"weights/{name}")]


def _common_fields(spec: ModelSpec | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if spec is not None and spec.modality is not None:
        fields["modality"] = spec.modality
    if spec is not None and spec.description is not None:
        fields["description"] = spec.description
    if spec is not None and spec.role is not None:
        fields["role"] = spec.role
    return fields


def _validated(fields: dict[str, Any], files: Sequence[WeightFile]) -> ModelManifest:
    try:
        return ModelManifest.model_validate({**fields, "files": list(files)})
    except ValidationError as exc:
        raise ModelInstallError(f"manifest: {describe_validation_error(exc)}") from exc


def _check_weights(manifest: ModelManifest, folder: Path) -> None:
    weights = folder / manifest.files[0].path
    if manifest.format is ModelFormat.MONAI and manifest.network is not None:
        check_monai(manifest.network, manifest.labels, weights)
    elif manifest.format is ModelFormat.TORCHSCRIPT:
        check_torchscript(weights)
    elif manifest.format is ModelFormat.ONNX and manifest.input is not None:
        check_onnx(weights, manifest.input, manifest.labels)


def _copy_all(copies: Copies, staging: Path) -> list[WeightFile]:
    needed = sum(path.stat().st_size for path, _ in copies)
    free = shutil.disk_usage(staging).free
    if needed > free:
        raise ModelInstallError(f"the model needs {needed // 2**20} MiB; {free // 2**20} MiB free")
    return [
        WeightFile(path=relative, sha256=_copy_hashed(path, staging / relative))
        for path, relative in copies
    ]


def _plan(
    source: Source,
    name: str,
    spec_path: Path | None,
    version: str | None,
    source_text: str,
) -> tuple[dict[str, Any], Copies, dict[str, str]]:
    """Manifest fields (all but files), the copies to make, and the hashes the copies must
    have (a prepared folder's manifest states them)."""
    if isinstance(source, PreparedSource):
        if spec_path is not None:
            raise ModelInstallError(f"{source.folder} already has a {MANIFEST_NAME}; drop --spec")
        try:
            prepared = read_manifest(source.folder / MANIFEST_NAME)
        except ModelError as exc:
            raise ModelInstallError(str(exc)) from exc
        fields = prepared.model_dump(exclude={"files"})
        fields |= {"name": name, "version": version or prepared.version, "source": source_text}
        copies = [(source.folder / weight.path, weight.path) for weight in prepared.files]
        missing = [relative for path, relative in copies if not path.is_file()]
        if missing:
            raise ModelInstallError(f"{source.folder} lacks {', '.join(missing)}")
        return fields, copies, {weight.path: weight.sha256 for weight in prepared.files}
    spec = read_spec(spec_path) if spec_path is not None else None
    if isinstance(source, NnunetSource):
        fields, copies = _plan_nnunet(source, spec)
    else:
        fields, copies = _plan_file(source, spec)
    fields |= _common_fields(spec)
    fields |= {"name": name, "version": _version(spec, version, "1"), "source": source_text}
    return fields, copies, {}


def _locate(
    source: Path, root: Path, forced: ModelFormat | None, scratch: list[Path]
) -> tuple[Source, str]:
    """The model in `source` (unpacking a zip into the store's root) and how to name where it
    came from in the manifest."""
    source_text = str(source.resolve())
    if source.is_file() and is_archive(source):
        unpacked = _scratch(root, "extract")
        scratch.append(unpacked)
        extract_archive(source, unpacked)
        located = locate_source(unpacked, forced)
        where = located.path if isinstance(located, FileSource) else located.folder
        relative = where.relative_to(unpacked).as_posix()
        return located, f"{source_text}!/{relative}" if relative != "." else source_text
    return locate_source(source, forced), source_text


def _move_into_place(staging: Path, target: Path, scratch: list[Path]) -> None:
    root = target.parent
    if target.exists():
        retired = root / f".remove-{secrets.token_hex(6)}"
        target.rename(retired)
        scratch.append(retired)
        try:
            staging.rename(target)
        except OSError:
            retired.rename(target)
            raise
    else:
        staging.rename(target)
    _fsync_folder(root)


def install_model(
    root: Path,
    source: Path,
    name: str,
    *,
    spec: Path | None = None,
    version: str | None = None,
    replace: bool = False,
    model_format: ModelFormat | None = None,
) -> ModelManifest:
    """Install `source` as `<root>/<name>`; return its manifest. See the module docstring."""
    check_name(name)
    if not source.exists():
        raise ModelInstallError(f"{source} does not exist")
    if spec is not None and not spec.is_file():
        raise ModelInstallError(f"spec {spec} does not exist")
    target = root / name
    if target.exists() and not replace:
        raise ModelInstallError(
            f"model '{name}' is already installed; give --replace to replace it"
        )
    root.mkdir(parents=True, exist_ok=True)
    scratch: list[Path] = []
    try:
        located, source_text = _locate(source, root, model_format, scratch)
        if isinstance(located, PreparedSource) and model_format is not None:
            declared = read_manifest(located.folder / MANIFEST_NAME).format
            if declared is not model_format:
                raise ModelInstallError(
                    f"{located.folder} holds a {declared} model, not {model_format}"
                )
        spec_path = spec or (located.spec if isinstance(located, FileSource) else None)
        fields, copies, expected = _plan(located, name, spec_path, version, source_text)
        # Validate before copying (weights can be gigabytes): placeholder hashes.
        draft = _validated(fields, [WeightFile(path=rel, sha256="0" * 64) for _, rel in copies])
        uncoded = uncoded_labels(draft.labels) if draft.role == "segments" else []
        if uncoded:
            raise ModelInstallError(
                f"labels without a code in pipelines/codes.py: {', '.join(uncoded)}; map each"
                " value to a known structure name under labels: in --spec (or give role:"
                " intermediate for a model whose classes a pipeline interprets)"
            )
        staging = _scratch(root, "install")
        scratch.append(staging)
        files = _copy_all(copies, staging)
        damaged = [w.path for w in files if expected and expected.get(w.path) != w.sha256]
        if damaged:
            raise ModelInstallError(
                f"sha256 differs from the source's manifest: {', '.join(damaged)} (damaged copy?)"
            )
        manifest = _validated(fields, files)
        _check_weights(manifest, staging)
        (staging / MANIFEST_NAME).write_text(manifest_yaml(manifest), encoding="utf-8")
        _move_into_place(staging, target, scratch)
        scratch.remove(staging)
    finally:
        for path in scratch:
            shutil.rmtree(path, ignore_errors=True)
    logger.debug(
        "model %r installed (version %s, %s, %d labels) from %s",
        name,
        manifest.version,
        manifest.format,
        len(manifest.labels),
        source_text,
    )
    return manifest
