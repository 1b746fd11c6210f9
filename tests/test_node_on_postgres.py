"""The whole node on a real PostgreSQL index: C-STORE with dcmtk, then the admin API."""

from __future__ import annotations

import httpx
import pydicom

from tests.conftest import NodeFactory
from tests.support.dicom import storescu
from tests.support.peers import shared_data
from tests.support.postgres import running_postgres


def test_storescu_series_lands_in_a_postgresql_index(start_node: NodeFactory) -> None:
    files = sorted(shared_data("mr", "dcmqa_decubitus_t1_sag_HFS").glob("*.dcm"))[:6]
    with running_postgres() as server:
        node = start_node({"database": {"url": server.url}, "dimse": {"workers": 2}})
        result = storescu(node.dimse_port, files)
        assert result.returncode == 0, result.stderr
        uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
        series = httpx.get(f"{node.http_url}/api/series/{uid}", timeout=10).json()
        health = httpx.get(f"{node.http_url}/api/health", timeout=10).json()
        assert node.terminate() == 0
    assert series["instance_count"] == 6
    assert health["database"] == "postgresql"
