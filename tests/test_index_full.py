"""A full disk under the index: the SQLite file on a tiny tmpfs, storage on the normal disk.

The peer gets 0xA700 (Out of Resources) once SQLite reports the disk full, the file written for
that instance is taken back, and the node keeps serving.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import dcmtk, send_raw
from tests.support.phantom import write_ct_series
from tests.support.tmpfs import mounted_tmpfs

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700


def test_index_disk_full_is_out_of_resources(start_node: NodeFactory, tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "ct", 120, size=64)
    with mounted_tmpfs(tmp_path / "index-fs", 256 * 1024) as index_fs:
        node = start_node(
            {"database": {"url": f"sqlite:///{index_fs / 'index.sqlite'}"}, "dimse": {"workers": 1}}
        )
        results = send_raw(node.dimse_port, files)
        statuses = [status for status, _ in results]
        assert SUCCESS in statuses
        assert OUT_OF_RESOURCES in statuses
        first_refusal = statuses.index(OUT_OF_RESOURCES)
        assert results[first_refusal][1] == "index database full"
        assert dcmtk("echoscu", "127.0.0.1", str(node.dimse_port)).returncode == 0
        assert node.terminate() == 0
        uri = f"file:{index_fs / 'index.sqlite'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            indexed = {row[0] for row in db.execute("SELECT sop_instance_uid FROM instance")}
    stored = {path.stem for path in (node.storage / "studies").rglob("*.dcm")}
    assert stored == indexed
    accepted = {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        for path, (status, _) in zip(files, results, strict=True)
        if status == SUCCESS
    }
    assert accepted == indexed
