"""Start-up recovery of placements a crash left between the file rename and the index commit.

The crash itself is exercised end to end by test_crash_safety (kill -9 mid-transfer); here the
states it can leave are built directly through the storage area, a seam the project owns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dicom_node.config import DuplicatePolicy, MissingUidPolicy
from dicom_node.index import Index
from dicom_node.storage import InstanceStore, Receipt, StorageArea
from tests.support.dicom import dataset_bytes
from tests.support.peers import shared_data

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@pytest.fixture
def area(tmp_path: Path) -> StorageArea:
    storage = StorageArea(root=tmp_path / "storage")
    storage.prepare()
    return storage


@pytest.fixture
def store(area: StorageArea, tmp_path: Path) -> Iterator[InstanceStore]:
    index = Index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield InstanceStore(
        area,
        index,
        on_duplicate=DuplicatePolicy.REPLACE,
        missing_uids=MissingUidPolicy.REFUSE,
    )
    index.close()


def mr_dataset(number: int = 0) -> bytes:
    files = sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm"))
    return dataset_bytes(files[number])


def store_one(store: InstanceStore, encoded: bytes, store_root: Path) -> Path:
    outcome = store.store(encoded, Receipt(transfer_syntax_uid=EXPLICIT_VR_LITTLE_ENDIAN))
    (path,) = Path(store_root).rglob(f"{outcome.sop_instance_uid}.dcm")
    return path


def test_placed_but_unindexed_file_is_undone(store: InstanceStore, area: StorageArea) -> None:
    relative = area.instance_path("1.2.3", "1.2.3.4", "1.2.3.4.5")
    placement = area.place(relative, [b"\0" * 128 + b"DICM" + b"\0" * 64])
    assert area.holds(placement)
    assert store.recover() == 1
    assert not area.absolute(relative).exists()
    assert list(area.incoming.iterdir()) == []


def test_committed_but_unsettled_placement_is_kept(store: InstanceStore, area: StorageArea) -> None:
    path = store_one(store, mr_dataset(), area.root)
    relative = path.relative_to(area.root)
    study, series, sop = relative.parts[1], relative.parts[2], path.stem
    leftover = area.incoming / f"{study}_{series}_{sop}.abc.part"
    leftover.hardlink_to(path)
    before = path.read_bytes()
    assert store.recover() == 0
    assert path.read_bytes() == before
    assert list(area.incoming.iterdir()) == []


def test_uncommitted_replacement_restores_the_indexed_version(
    store: InstanceStore, area: StorageArea
) -> None:
    original = mr_dataset()
    path = store_one(store, original, area.root)
    relative = area.instance_path(*path.relative_to(area.root).parts[1:3], path.stem)
    kept = area.superseded_path(path.stem, datetime(2026, 1, 1, tzinfo=UTC))
    area.keep(relative, kept)
    newer = original.replace(b"Rorden", b"Newer!", 1)
    assert newer != original
    placement = area.place(relative, [path.read_bytes()[: -len(original)], newer])
    assert dataset_bytes(area.absolute(relative)) == newer
    assert store.recover() == 1
    assert dataset_bytes(area.absolute(relative)) == original
    assert not area.absolute(kept).exists()
    assert not placement.journal.exists()


def test_journal_of_a_write_that_never_renamed_is_dropped(
    store: InstanceStore, area: StorageArea
) -> None:
    path = store_one(store, mr_dataset(), area.root)
    before = path.read_bytes()
    relative = path.relative_to(area.root)
    study, series, sop = relative.parts[1], relative.parts[2], path.stem
    (area.incoming / f"{study}_{series}_{sop}.def.part").write_bytes(b"partial")
    assert store.recover() == 0
    assert path.read_bytes() == before
    assert list(area.incoming.iterdir()) == []
