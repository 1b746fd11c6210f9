"""A really full disk: the storage folder is a 3 MiB tmpfs that holds five of ten CT instances.

The index stays on the normal disk. With `storage.min_free_bytes: 0` the node has no early
refusal, so the write itself hits ENOSPC; the peer must get 0xA700 (Refused: Out of Resources)
and the node must leave nothing partial behind and keep serving.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NodeFactory
from tests.support.node import NodeProcess
from tests.support.peers import require_command, shared_data
from tests.support.phantom import write_ct_series
from tests.support.storage_check import (
    OUT_OF_RESOURCES,
    SUCCESS,
    StoreResponse,
    dataset_sha256,
    incoming_entries,
    index_rows,
    parse_storescu_log,
    read_problem,
    run_storescu,
    sop_instance_uid,
    stored_files,
)
from tests.support.tmpfs import mounted_tmpfs

TMPFS_BYTES = 3 * 1024 * 1024  # five 525 KB CT instances fit, the sixth does not
CT_INSTANCES = 10


@pytest.fixture
def tmpfs_storage(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for the test (request it before `start_node`: it unmounts last)."""
    with mounted_tmpfs(tmp_path / "tmpfs", TMPFS_BYTES) as mount_point:
        yield mount_point


def _storage_node(start_node: NodeFactory, storage: Path, min_free_bytes: int) -> NodeProcess:
    return start_node({"storage": {"path": str(storage), "min_free_bytes": min_free_bytes}})


@dataclass(frozen=True)
class FilledDisk:
    node: NodeProcess
    sent: dict[str, Path]  # SOP Instance UID -> file, in sending order
    responses: dict[str, StoreResponse]  # SOP Instance UID -> what storescu logged

    def status(self, uid: str) -> int | None:
        response = self.responses.get(uid)
        return None if response is None else response.status

    def with_status(self, status: int) -> set[str]:
        return {uid for uid in self.sent if self.status(uid) == status}


@pytest.fixture
def filled_disk(tmpfs_storage: Path, start_node: NodeFactory, tmp_path: Path) -> FilledDisk:
    """Ten CT instances sent in one association (-nh: go on after a failure) to the tmpfs."""
    files = write_ct_series(tmp_path / "ct", CT_INSTANCES)
    node = _storage_node(start_node, tmpfs_storage, min_free_bytes=0)
    result = run_storescu(node.dimse_port, files, "-d", "-nh")
    by_path = parse_storescu_log(result.stderr)
    uids = {path: sop_instance_uid(path) for path in files}
    return FilledDisk(
        node=node,
        sent={uids[path]: path for path in files},
        responses={uids[path]: response for path, response in by_path.items()},
    )


def test_instances_that_do_not_fit_are_refused_out_of_resources(filled_disk: FilledDisk) -> None:
    statuses = [filled_disk.status(uid) for uid in filled_disk.sent]
    stored = statuses.count(SUCCESS)
    assert 0 < stored < CT_INSTANCES
    assert statuses == [SUCCESS] * stored + [OUT_OF_RESOURCES] * (CT_INSTANCES - stored)


def test_instances_stored_before_the_disk_filled_are_intact(filled_disk: FilledDisk) -> None:
    node = filled_disk.node
    rows = index_rows(node.workdir / "index.sqlite")
    stored = filled_disk.with_status(SUCCESS)
    assert rows.keys() == stored
    for uid in stored:
        path = node.storage / rows[uid].file_path
        assert read_problem(path) is None
        assert dataset_sha256(path) == dataset_sha256(filled_disk.sent[uid]) == rows[uid].sha256


def test_refused_instances_leave_no_file(filled_disk: FilledDisk) -> None:
    storage = filled_disk.node.storage
    assert incoming_entries(storage) == []
    assert {path.stem for path in stored_files(storage)} == filled_disk.with_status(SUCCESS)


def test_node_answers_echo_after_the_disk_filled(filled_disk: FilledDisk) -> None:
    echo = subprocess.run(
        [
            require_command("echoscu"),
            "-aec",
            "DICOM_NODE",
            "127.0.0.1",
            str(filled_disk.node.dimse_port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert echo.returncode == 0, echo.stderr


def test_smaller_instance_still_fits_after_the_disk_filled(filled_disk: FilledDisk) -> None:
    node = filled_disk.node
    mr = sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm"))[0]
    result = run_storescu(node.dimse_port, [mr], "-v")
    assert result.returncode == 0, result.stderr
    uid = sop_instance_uid(mr)
    row = index_rows(node.workdir / "index.sqlite")[uid]
    assert dataset_sha256(node.storage / row.file_path) == dataset_sha256(mr) == row.sha256


def test_free_space_reserve_refuses_the_first_instance(
    tmpfs_storage: Path, start_node: NodeFactory, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "ct", 1)
    node = _storage_node(start_node, tmpfs_storage, min_free_bytes=TMPFS_BYTES + 1)
    result = run_storescu(node.dimse_port, files, "-d")
    assert parse_storescu_log(result.stderr)[files[0]].status == OUT_OF_RESOURCES
    assert stored_files(tmpfs_storage) == []
    assert incoming_entries(tmpfs_storage) == []
    assert index_rows(node.workdir / "index.sqlite") == {}
