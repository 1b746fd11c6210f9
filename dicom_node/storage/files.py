"""Durable, atomic file writes inside the storage root, and the paths derived from UIDs.

Layout (every component a validated UID, never a raw string from the peer):

    <root>/studies/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    <root>/superseded/<SOPInstanceUID>/<UTC timestamp>.dcm   previous versions (policy replace)
    <root>/.incoming/                                          temp files and journals

A file appears at its final path only complete and fsynced (write temp, fsync, rename, fsync
the folder), so a crash at any moment leaves either the whole file or nothing. The temp file
stays hard-linked to the target until the index commit, as a journal of the placement.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from dicom_node.errors import InvalidInstanceError, OutOfResourcesError, StorageError
from dicom_node.fs import fsync_directory
from dicom_node.uids import is_valid_uid

__all__ = ["Placement", "StorageArea"]

_OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _storage_failure(action: str, exc: OSError) -> StorageError:
    if exc.errno in _OUT_OF_SPACE:
        return OutOfResourcesError(f"storage full while {action}")
    return StorageError(f"storage I/O error while {action}: {os.strerror(exc.errno or 0)}")


@dataclass(frozen=True)
class Placement:
    """A file put at its final path whose index row is not committed yet."""

    relative: PurePosixPath
    journal: Path


@dataclass(frozen=True)
class StorageArea:
    root: Path
    min_free_bytes: int = 0
    fsync: bool = True

    @property
    def incoming(self) -> Path:
        return self.root / ".incoming"

    def prepare(self) -> int:
        """Create the folders and delete temp files a crash left behind (journals of placed
        files stay for InstanceStore.recover); return how many were deleted."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        (self.root / "studies").mkdir(exist_ok=True)
        journals = {placement.journal for placement in self.journals()}
        removed = 0
        for leftover in self.incoming.iterdir():
            if leftover in journals:
                continue
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
            removed += 1
        return removed

    def instance_path(
        self, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
    ) -> PurePosixPath:
        """Relative path of an instance; refuses anything that is not a valid UID."""
        for name, value in (
            ("StudyInstanceUID", study_instance_uid),
            ("SeriesInstanceUID", series_instance_uid),
            ("SOPInstanceUID", sop_instance_uid),
        ):
            if not is_valid_uid(value):
                raise InvalidInstanceError(f"{name} is not a valid UID")
        return PurePosixPath(
            "studies", study_instance_uid, series_instance_uid, f"{sop_instance_uid}.dcm"
        )

    def superseded_path(self, sop_instance_uid: str, when: datetime) -> PurePosixPath:
        if not is_valid_uid(sop_instance_uid):
            raise InvalidInstanceError("SOPInstanceUID is not a valid UID")
        return PurePosixPath(
            "superseded", sop_instance_uid, f"{when.strftime('%Y%m%dT%H%M%S%fZ')}.dcm"
        )

    def absolute(self, relative: PurePosixPath | str) -> Path:
        return self.root / relative

    def check_free_space(self, needed: int) -> None:
        """Refuse early when the write would eat into the configured reserve."""
        if self.min_free_bytes <= 0:
            return
        try:
            usage = shutil.disk_usage(self.root)
        except OSError as exc:
            raise _storage_failure("checking free space", exc) from exc
        if usage.free - needed < self.min_free_bytes:
            raise OutOfResourcesError("storage is below its free-space reserve")

    def _make_parent(self, target: Path) -> None:
        missing: list[Path] = []
        parent = target.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        if not missing:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            # New directory entries must reach the disk too, deepest last.
            for created in reversed(missing):
                fsync_directory(created.parent)

    def place(self, relative: PurePosixPath, parts: Sequence[bytes | bytearray]) -> Placement:
        """Put the concatenated `parts` at `relative` atomically: it appears there complete
        and fsynced (its folder is synced before the index commit, see `folders_to_sync`), or
        the target is left as it was. The temp file stays in `.incoming/` as
        a hard link to the target (the journal) until `settle`, so a crash before the index
        commit is found and undone at the next start (see InstanceStore.recover)."""
        target = self.absolute(relative)
        study, series, sop = relative.parts[1], relative.parts[2], relative.stem
        journal = self.incoming / f"{study}_{series}_{sop}.{uuid.uuid4().hex[:12]}.part"
        link = journal.with_suffix(".link")
        try:
            self._make_parent(target)
            fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                # One gathering write of the pieces (preamble+meta, dataset): no joined copy.
                pending = [memoryview(part) for part in parts if part]
                while pending:
                    written = os.writev(fd, pending)
                    while pending and written >= len(pending[0]):
                        written -= len(pending.pop(0))
                    if pending and written:
                        pending[0] = pending[0][written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.link(journal, link)
            os.replace(link, target)
        except OSError as exc:
            link.unlink(missing_ok=True)
            journal.unlink(missing_ok=True)
            raise _storage_failure("writing an instance", exc) from exc
        return Placement(relative=relative, journal=journal)

    def folders_to_sync(self, relative: PurePosixPath) -> tuple[Path, ...]:
        """Folders whose entries must be fsynced before a placed file counts as stored (the
        index does it once for every instance of a group commit)."""
        return (self.absolute(relative).parent,) if self.fsync else ()

    def settle(self, placement: Placement) -> None:
        """The index has committed the placed file: drop its journal."""
        placement.journal.unlink(missing_ok=True)

    def journals(self) -> list[Placement]:
        """Placements a crash left unsettled: their target may hold an uncommitted file."""
        found = []
        for journal in sorted(self.incoming.glob("*.part")):
            parts = journal.name.removesuffix(".part").rsplit(".", 1)[0].split("_")
            if len(parts) == 3 and all(is_valid_uid(part) for part in parts):
                relative = PurePosixPath("studies", parts[0], parts[1], f"{parts[2]}.dcm")
                found.append(Placement(relative=relative, journal=journal))
        return found

    def holds(self, placement: Placement) -> bool:
        """True when the placement's target is (still) the journal's file."""
        try:
            return os.path.samefile(placement.journal, self.absolute(placement.relative))
        except OSError:
            return False

    def keep(self, current: PurePosixPath | str, keep_as: PurePosixPath) -> None:
        """Hard-link the file at `current` as `keep_as` (its old version outlives a replace)."""
        source = self.absolute(current)
        target = self.absolute(keep_as)
        try:
            self._make_parent(target)
            os.link(source, target)
            if self.fsync:
                fsync_directory(target.parent)
        except OSError as exc:
            raise _storage_failure("keeping the superseded version", exc) from exc

    def find_kept(
        self, sop_instance_uid: str, sha256: str, digest: Callable[[bytes], str]
    ) -> str | None:
        """The kept (superseded) version of an instance whose content digest is `sha256`."""
        folder = self.root / "superseded" / sop_instance_uid
        if not is_valid_uid(sop_instance_uid) or not folder.is_dir():
            return None
        for candidate in sorted(folder.glob("*.dcm"), reverse=True):
            if digest(candidate.read_bytes()) == sha256:
                return str(candidate.relative_to(self.root))
        return None

    def restore(self, kept: PurePosixPath, current: PurePosixPath | str) -> None:
        """Undo a replace whose index commit failed: put the kept version back."""
        os.replace(self.absolute(kept), self.absolute(current))

    def remove(self, relative: PurePosixPath | str) -> None:
        self.absolute(relative).unlink(missing_ok=True)
