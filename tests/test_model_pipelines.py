"""The CT model pipelines through a running node, with the project's test models installed.

Phantom CTs (held-out seeds, not seen in training) are sent with dcmtk storescu; the SEG the node
writes is scored against the phantom's truth (Dice >= 0.8 per structure) and both documents are
checked with dciodvfy. The models are those `scripts/make_test_models.py` builds into
tests/models/, installed through `pipelines.models.ModelStore` like `dicom-node models install`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dicom_node.phantom_abdomen import ABDOMEN_LABELS, make_abdomen, tumor_count
from dicom_node.phantom_skeleton import ORGAN_LABELS, RIB_LABELS, VERTEBRA_LABELS, make_skeleton
from pipelines.codes import (
    LONG_AXIS,
    NUMBER_OF_LESIONS,
    RECOMMENDATION,
    REVIEW_RECOMMENDED,
    SEGMENT_CODES,
)
from pipelines.models import ModelStore
from tests.support.node import NodeProcess, base_config, deep_merge
from tests.support.results import dciodvfy_errors
from tests.support.segmentation_check import (
    NodeResult,
    dice_by_structure,
    numeric_values,
    process_volume,
    segment_codes,
    segment_numbers,
)

MODELS = Path(os.environ.get("DICOM_NODE_TEST_MODELS", Path(__file__).parent / "models"))
HELD_OUT_SEED = 101  # training used other seeds (tests/models/README.md)
FAST = {"inference": {"mirroring": False}}
DESCRIPTIONS = {name: code.description for name, code in SEGMENT_CODES.items()}

# Install name -> (source in tests/models, spec beside it or None when the format carries it).
INSTALLS: dict[str, tuple[str, str | None]] = {
    "abdomenatlas": ("abdomenatlas/model.pth", "abdomenatlas/spec.yaml"),
    "lits_liver": ("lits_liver/model.pth", "lits_liver/spec.yaml"),
    "lits_tumor": ("lits_tumor_onnx/model.onnx", "lits_tumor_onnx/spec.yaml"),
    "autoorgan_organ": ("nnunet/Dataset901_AutoOrganOrgan", None),
    "autoorgan_vertebrae": ("nnunet/Dataset902_AutoOrganVertebrae", None),
    "autoorgan_rib": ("nnunet/Dataset903_AutoOrganRib", None),
}


def _install_all(root: Path) -> Path:
    store = ModelStore(root)
    for name, (source, spec) in INSTALLS.items():
        store.install(MODELS / source, name, spec=MODELS / spec if spec else None)
    return root


def _start(workdir: Path, models_dir: Path, routes: list[dict[str, Any]]) -> NodeProcess:
    overrides = {
        "series": {"stable_after_s": 600},  # the tests mark series ready themselves
        "models_dir": str(models_dir),
        "inference": {"device": "cpu"},
        "routes": routes,
        "pipelines": {
            "ct_abdomen": FAST,
            "ct_liver_tumor": FAST,
            "ct_total": {
                **FAST,
                "models": ["autoorgan_organ", "autoorgan_vertebrae", "autoorgan_rib"],
            },
        },
    }
    return NodeProcess(workdir, deep_merge(base_config(workdir), overrides)).start(timeout_s=60)


def _route(pipeline: str) -> dict[str, Any]:
    return {"name": pipeline, "match": {"Modality": "CT"}, "pipeline": pipeline, "send_to": []}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _install_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def abdomen_runs(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProcess, NodeResult, NodeResult]]:
    """One node, two abdomen series in a row: a plain phantom, then one with an ambiguous spleen."""
    workdir = tmp_path_factory.mktemp("abdomen-node")
    node = _start(workdir / "node", models_dir, [_route("ct_abdomen")])
    try:
        plain, _ = make_abdomen(seed=HELD_OUT_SEED)
        ambiguous, _ = make_abdomen(seed=HELD_OUT_SEED + 1, ambiguous="spleen")
        first = process_volume(node, plain, workdir / "plain")
        second = process_volume(node, ambiguous, workdir / "ambiguous")
        yield node, first, second
    finally:
        node.terminate()


def test_ct_abdomen_segments_every_organ(
    abdomen_runs: tuple[NodeProcess, NodeResult, NodeResult],
) -> None:
    _, result, _ = abdomen_runs
    _, truth = make_abdomen(seed=HELD_OUT_SEED)
    organs = {name: value for name, value in ABDOMEN_LABELS.items() if name != "liver_tumor"}
    # The abdomen model knows no tumor: count tumor voxels as liver.
    truth = np.where(truth == ABDOMEN_LABELS["liver_tumor"], ABDOMEN_LABELS["liver"], truth)
    scores = dice_by_structure(result, truth, organs, DESCRIPTIONS)
    assert set(scores) == set(organs)
    assert min(scores.values()) >= 0.8, scores


def test_ct_abdomen_documents_are_valid(
    abdomen_runs: tuple[NodeProcess, NodeResult, NodeResult],
) -> None:
    _, result, _ = abdomen_runs
    assert dciodvfy_errors(result.seg_path) == []
    assert dciodvfy_errors(result.sr_path) == []


def test_ct_abdomen_flags_only_the_ambiguous_organ(
    abdomen_runs: tuple[NodeProcess, NodeResult, NodeResult],
) -> None:
    _, plain, ambiguous = abdomen_runs
    review = (RECOMMENDATION.value, REVIEW_RECOMMENDED.value)
    flagged = {
        number for number, codes in segment_codes(ambiguous.report()).items() if review in codes
    }
    spleen = segment_numbers(ambiguous.seg_path)[DESCRIPTIONS["spleen"]]
    assert flagged == {spleen}
    assert not any(review in codes for codes in segment_codes(plain.report()).values())


def test_resident_model_is_loaded_once_for_two_series(
    abdomen_runs: tuple[NodeProcess, NodeResult, NodeResult],
) -> None:
    node, _, _ = abdomen_runs
    loads = re.findall(r"model 'abdomenatlas' loaded \(", node.log())
    assert len(loads) == 1, node.log()[-3000:]


@pytest.fixture(scope="module")
def liver_tumor_run(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeResult]:
    workdir = tmp_path_factory.mktemp("liver-node")
    node = _start(workdir / "node", models_dir, [_route("ct_liver_tumor")])
    try:
        volume, _ = make_abdomen(seed=HELD_OUT_SEED)
        yield process_volume(node, volume, workdir / "series")
    finally:
        node.terminate()


def test_ct_liver_tumor_segments_liver_and_tumors(liver_tumor_run: NodeResult) -> None:
    _, truth = make_abdomen(seed=HELD_OUT_SEED)
    labels = {"liver": ABDOMEN_LABELS["liver"], "liver_tumor": ABDOMEN_LABELS["liver_tumor"]}
    scores = dice_by_structure(liver_tumor_run, truth, labels, DESCRIPTIONS)
    assert set(scores) == set(labels)
    assert min(scores.values()) >= 0.8, scores


def test_ct_liver_tumor_reports_the_tumor_count(liver_tumor_run: NodeResult) -> None:
    _, truth = make_abdomen(seed=HELD_OUT_SEED)
    tumor = segment_numbers(liver_tumor_run.seg_path)[DESCRIPTIONS["liver_tumor"]]
    values = numeric_values(liver_tumor_run.report())
    counts = [v for s, code, v, _ in values if s == tumor and code == NUMBER_OF_LESIONS.value]
    diameters = [v for s, code, v, unit in values if s == tumor and code == LONG_AXIS.value]
    assert counts == [float(tumor_count(truth))]
    assert len(diameters) == 1
    assert diameters[0] > 0


def test_ct_liver_tumor_documents_are_valid(liver_tumor_run: NodeResult) -> None:
    assert dciodvfy_errors(liver_tumor_run.seg_path) == []
    assert dciodvfy_errors(liver_tumor_run.sr_path) == []


@pytest.fixture(scope="module")
def total_run(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeResult]:
    workdir = tmp_path_factory.mktemp("total-node")
    node = _start(workdir / "node", models_dir, [_route("ct_total")])
    try:
        volume, _ = make_skeleton(seed=HELD_OUT_SEED)
        yield process_volume(node, volume, workdir / "series")
    finally:
        node.terminate()


def test_ct_total_segments_organs_vertebrae_and_ribs(total_run: NodeResult) -> None:
    _, truths = make_skeleton(seed=HELD_OUT_SEED)
    scores: dict[str, float] = {}
    for task, labels in (
        ("organ", ORGAN_LABELS),
        ("vertebrae", VERTEBRA_LABELS),
        ("rib", RIB_LABELS),
    ):
        scores.update(dice_by_structure(total_run, truths[task], labels, DESCRIPTIONS))
    assert len(scores) >= 10, scores
    assert min(scores.values()) >= 0.8, scores


def test_ct_total_documents_are_valid(total_run: NodeResult) -> None:
    assert dciodvfy_errors(total_run.seg_path) == []
    assert dciodvfy_errors(total_run.sr_path) == []
