"""kill -9 of the node in the middle of a 300-instance C-STORE association, then a restart.

Whatever storescu was told was stored must survive, intact and indexed; nothing partial may be
left anywhere; and the sender can simply send everything again.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.node import NodeProcess, base_config
from tests.support.phantom import write_ct_series
from tests.support.storage_check import (
    IndexRow,
    dataset_sha256,
    incoming_entries,
    index_rows,
    parse_storescu_log,
    read_problem,
    run_storescu,
    sop_instance_uid,
    stored_files,
    storescu_command,
    storescu_env,
)

pytestmark = pytest.mark.slow

INSTANCES = 300
KILL_AFTER_INDEXED = 40  # well before the end: 300 instances take seconds, not milliseconds
DEADLINE_S = 120.0
TEMP_FILE_WAIT_S = 5.0


@dataclass(frozen=True)
class StoredFile:
    sop_instance_uid: str
    dataset_sha256: str
    problem: str | None  # why it does not parse completely; None when it does


@dataclass(frozen=True)
class CrashRun:
    sent: dict[str, Path]  # SOP Instance UID -> file sent
    sent_sha256: dict[str, str]  # SOP Instance UID -> sha256 of the sent dataset part
    reported_stored: frozenset[str]  # storescu logged Success before the kill
    incoming_after_restart: list[str]
    files: dict[str, StoredFile]  # path relative to the storage root -> what it holds
    rows: dict[str, IndexRow]  # the index after the restart
    node: NodeProcess  # the restarted node


def _indexed_count(client: httpx.Client, node: NodeProcess) -> int:
    try:
        return int(client.get(f"{node.http_url}/api/health").json()["instances"])
    except httpx.TransportError:
        return 0


def _wait_for_temp_file(incoming: Path, sender: subprocess.Popen[str]) -> None:
    """Poll until an instance is being written (its temp file exists), for a short while:
    killing then also tests that the restart removes what the crash left in `.incoming`."""
    deadline = time.monotonic() + TEMP_FILE_WAIT_S
    while not os.listdir(incoming) and sender.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)  # a temp file lives for milliseconds only


def _kill_mid_transfer(node: NodeProcess, files: list[Path], log_path: Path) -> str:
    """Send `files` in one association; kill -9 the node once some are indexed; the log."""
    with log_path.open("w", encoding="utf-8") as log:
        sender = subprocess.Popen(
            storescu_command(node.dimse_port, files, "-v"),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=storescu_env(),
        )
    try:
        deadline = time.monotonic() + DEADLINE_S
        with httpx.Client(timeout=5) as client:
            while _indexed_count(client, node) < KILL_AFTER_INDEXED:
                assert sender.poll() is None, "storescu ended before the node was killed"
                assert time.monotonic() < deadline, "the node indexed too few instances"
                time.sleep(0.01)
        _wait_for_temp_file(node.storage / ".incoming", sender)
        node.kill()
        sender.wait(timeout=DEADLINE_S)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    return log_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashRun]:
    root = tmp_path_factory.mktemp("crash")
    files = write_ct_series(root / "sent", INSTANCES)
    sent = {sop_instance_uid(path): path for path in files}
    workdir = root / "node"
    config = base_config(workdir)
    first = NodeProcess(workdir, config).start()
    try:
        log = _kill_mid_transfer(first, files, root / "storescu.log")
    finally:
        first.kill()
    uid_of = {path: uid for uid, path in sent.items()}
    reported = frozenset(
        uid_of[path] for path, response in parse_storescu_log(log).items() if response.success
    )
    node = NodeProcess(workdir, config).start()
    try:
        storage = node.storage
        yield CrashRun(
            sent=sent,
            sent_sha256={uid: dataset_sha256(path) for uid, path in sent.items()},
            reported_stored=reported,
            incoming_after_restart=incoming_entries(storage),
            files={
                str(path.relative_to(storage)): StoredFile(
                    sop_instance_uid=path.stem,
                    dataset_sha256=dataset_sha256(path),
                    problem=read_problem(path),
                )
                for path in stored_files(storage)
            },
            rows=index_rows(workdir / "index.sqlite"),
            node=node,
        )
    finally:
        node.terminate()


def test_node_was_killed_in_the_middle_of_the_transfer(crash_run: CrashRun) -> None:
    assert 0 < len(crash_run.reported_stored) < INSTANCES


def test_every_instance_reported_stored_is_indexed_after_restart(crash_run: CrashRun) -> None:
    assert crash_run.reported_stored <= crash_run.rows.keys()


def test_every_instance_reported_stored_is_intact(crash_run: CrashRun) -> None:
    for uid in crash_run.reported_stored:
        row = crash_run.rows.get(uid)
        assert row is not None, f"{uid} is not indexed"
        stored = crash_run.files.get(row.file_path)
        assert stored is not None, f"{uid} has no file"
        assert stored.problem is None, f"{uid}: {stored.problem}"
        assert stored.dataset_sha256 == crash_run.sent_sha256[uid], f"{uid} differs from sent"


def test_incoming_is_empty_after_restart(crash_run: CrashRun) -> None:
    assert crash_run.incoming_after_restart == []


def test_every_stored_file_is_complete(crash_run: CrashRun) -> None:
    assert crash_run.files
    for relative, stored in crash_run.files.items():
        assert stored.problem is None, f"{relative}: {stored.problem}"
        assert stored.dataset_sha256 == crash_run.sent_sha256[stored.sop_instance_uid], relative


def test_every_stored_file_matches_its_index_row(crash_run: CrashRun) -> None:
    by_path = {row.file_path: row for row in crash_run.rows.values()}
    # An instance renamed into place but not committed when killed is undone at restart.
    assert [relative for relative in crash_run.files if relative not in by_path] == []
    for relative, row in by_path.items():
        stored = crash_run.files.get(relative)
        assert stored is not None, f"{relative} does not exist"
        assert stored.dataset_sha256 == row.sha256, relative


def test_every_index_row_points_at_an_existing_file(crash_run: CrashRun) -> None:
    missing = [row for row in crash_run.rows.values() if row.file_path not in crash_run.files]
    assert missing == []


def test_full_resend_after_restart_stores_every_instance(crash_run: CrashRun) -> None:
    node = crash_run.node
    result = run_storescu(node.dimse_port, list(crash_run.sent.values()), "-v")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = index_rows(node.workdir / "index.sqlite")
    assert rows.keys() == crash_run.sent.keys()
    assert len(stored_files(node.storage)) == INSTANCES
