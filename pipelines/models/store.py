"""The model store: one folder per installed model under `models_dir`.

    <models_dir>/<name>/manifest.yaml   what the model is (pipelines.models.manifest)
    <models_dir>/<name>/weights/...     the files the manifest lists, with their sha256

Folders starting with a dot are installs or removals in progress and are never models.
Reading the store needs only pydantic and PyYAML (no torch): HTTP workers list it.
"""

from __future__ import annotations

import builtins
import logging
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipelines.models.errors import ModelError, ModelNotInstalledError
from pipelines.models.install import install_model, sha256_of
from pipelines.models.manifest import (
    MANIFEST_NAME,
    NAME_PATTERN,
    ModelFormat,
    ModelManifest,
    read_manifest,
)

__all__ = ["InstalledModel", "ModelStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledModel:
    name: str
    folder: Path
    manifest: ModelManifest

    def path(self, relative: str) -> Path:
        """A file of the model, from a path relative to its folder (as the manifest has it)."""
        if PurePosixPath(relative).is_absolute() or ".." in PurePosixPath(relative).parts:
            raise ValueError(f"{relative!r} is not a path inside the model folder")
        return self.folder / relative


class ModelStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        return self._root

    def _folders(self) -> list[Path]:
        if not self._root.is_dir():
            return []
        return sorted(
            child
            for child in self._root.iterdir()
            if child.is_dir() and not child.name.startswith(".")
        )

    def _folder(self, name: str) -> Path | None:
        """The folder of a model name, or None for a name that cannot be one (never a path
        outside the store)."""
        if not re.fullmatch(NAME_PATTERN, name):
            return None
        return self._root / name

    def get(self, name: str) -> InstalledModel:
        """The installed model; ModelNotInstalledError if there is none of that name,
        ModelError if its folder is there but its manifest is not valid."""
        folder = self._folder(name)
        if folder is None or not (folder / MANIFEST_NAME).is_file():
            raise ModelNotInstalledError(name)
        manifest = read_manifest(folder / MANIFEST_NAME)
        if manifest.name != name:
            raise ModelError(f"model folder {name!r} holds a manifest named {manifest.name!r}")
        return InstalledModel(name, folder, manifest)

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except ModelError:
            return False
        return True

    def list(self) -> builtins.list[InstalledModel]:
        """The installed models, by name; broken folders are left out here and reported by
        `problems()`."""
        models: builtins.list[InstalledModel] = []
        for folder in self._folders():
            try:
                models.append(self.get(folder.name))
            except ModelError:
                continue
        return models

    def problems(self) -> dict[str, str]:
        """Folders in the store that are not usable models: folder name -> why."""
        found: dict[str, str] = {}
        for folder in self._folders():
            try:
                self.get(folder.name)
            except ModelNotInstalledError:
                found[folder.name] = f"no {MANIFEST_NAME}"
            except ModelError as exc:
                found[folder.name] = str(exc)
        return found

    def missing_files(self, name: str) -> builtins.list[str]:
        """A quick check without hashing: the files the manifest lists that are absent."""
        model = self.get(name)
        return [w.path for w in model.manifest.files if not model.path(w.path).is_file()]

    def verify(self, name: str) -> builtins.list[str]:
        """Every problem of an installed model's files (missing file, sha256 mismatch) or
        manifest (invalid); [] when it is good. The runtime calls this at each load."""
        try:
            model = self.get(name)
        except ModelNotInstalledError:
            raise
        except ModelError as exc:
            return [f"manifest invalid: {exc}"]
        problems: builtins.list[str] = []
        for weight in model.manifest.files:
            path = model.path(weight.path)
            if not path.is_file():
                problems.append(f"missing file: {weight.path}")
                continue
            found = sha256_of(path)
            if found != weight.sha256:
                problems.append(
                    f"sha256 mismatch: {weight.path} (manifest {weight.sha256[:12]}...,"
                    f" file {found[:12]}...)"
                )
        return problems

    def install(
        self,
        source: Path,
        name: str,
        *,
        spec: Path | None = None,
        version: str | None = None,
        replace: bool = False,
        model_format: ModelFormat | None = None,
    ) -> InstalledModel:
        """Install a model from a folder, weight file or zip (see pipelines.models.install).
        An existing name needs `replace=True`."""
        install_model(
            self._root,
            source,
            name,
            spec=spec,
            version=version,
            replace=replace,
            model_format=model_format,
        )
        return self.get(name)

    def remove(self, name: str) -> None:
        """Remove an installed (or broken) model folder."""
        folder = self._folder(name)
        if folder is None or not folder.is_dir():
            raise ModelNotInstalledError(name)
        # Renamed first, so that the name disappears at once and whole.
        retired = self._root / f".remove-{secrets.token_hex(6)}"
        folder.rename(retired)
        shutil.rmtree(retired)
        logger.debug("model %r removed", name)
