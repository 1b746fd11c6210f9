from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import NodeProcess, base_config, deep_merge

NodeFactory = Callable[..., NodeProcess]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[NodeFactory]:
    """Start `dicom-node serve` processes with config overrides; all are stopped afterwards."""
    started: list[NodeProcess] = []

    def start(overrides: dict[str, Any] | None = None, workdir: Path | None = None) -> NodeProcess:
        directory = workdir or tmp_path / f"node{len(started)}"
        node = NodeProcess(directory, deep_merge(base_config(directory), overrides or {}))
        started.append(node)
        return node.start()

    yield start
    for node in started:
        if node.process is not None and node.process.poll() is None:
            node.terminate()


@pytest.fixture
def node(start_node: NodeFactory) -> NodeProcess:
    return start_node()
