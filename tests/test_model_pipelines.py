"""The model pipelines through a running node, with the project's test models installed.

Phantom CTs and MRs (held-out seeds, not seen in training) are sent with dcmtk storescu; the
SEG the node writes is scored against the phantom's truth (Dice >= 0.8 per structure) and both
documents are checked with dciodvfy. The models are those `scripts/make_test_models.py` builds into
tests/models/, installed through `pipelines.models.ModelStore` like `dicom-node models install`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from dicom_node.phantom_abdomen import ABDOMEN_LABELS, make_abdomen, tumor_count
from dicom_node.phantom_cine import CinePhantom, make_cine, write_cine
from dicom_node.phantom_skeleton import ORGAN_LABELS, RIB_LABELS, VERTEBRA_LABELS, make_skeleton
from dicom_node.phantom_spine import make_spine
from pipelines.codes import (
    LEVEL_ANCHOR,
    LONG_AXIS,
    LV_EJECTION_FRACTION,
    LV_END_DIASTOLIC_VOLUME,
    LV_END_SYSTOLIC_VOLUME,
    LV_MASS,
    NUMBER_OF_LESIONS,
    RECOMMENDATION,
    REVIEW_RECOMMENDED,
    SEGMENT_CODES,
)
from pipelines.models import ModelStore
from pipelines.mr_spine.labelling import TSS_VALUES
from tests.support.node import NodeProcess, base_config, deep_merge
from tests.support.results import dciodvfy_errors, jobs, walk_content
from tests.support.segmentation_check import (
    NodeResult,
    dice_by_structure,
    numeric_values,
    process_files,
    process_volume,
    segment_codes,
    segment_numbers,
    send_and_mark_ready,
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
    "cmr_lv_resunet": ("cmr_lv_resunet/model.onnx", "cmr_lv_resunet/spec.yaml"),
    "totalspineseg_step1": (
        "nnunet/Dataset911_TotalSpineSegStep1",
        "nnunet/Dataset911_TotalSpineSegStep1/spec.yaml",
    ),
    "totalspineseg_step2": (
        "nnunet/Dataset912_TotalSpineSegStep2",
        "nnunet/Dataset912_TotalSpineSegStep2/spec.yaml",
    ),
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
            "mr_spine": FAST,
            "cmr_lv": {"inference": {"sw_batch_size": 16}},
        },
    }
    return NodeProcess(workdir, deep_merge(base_config(workdir), overrides)).start(timeout_s=60)


def _route(pipeline: str, modality: str = "CT") -> dict[str, Any]:
    return {"name": pipeline, "match": {"Modality": modality}, "pipeline": pipeline, "send_to": []}


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


@pytest.fixture(scope="module")
def spine_run(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeResult]:
    workdir = tmp_path_factory.mktemp("spine-node")
    node = _start(workdir / "node", models_dir, [_route("mr_spine", "MR")])
    try:
        volume, _ = make_spine(seed=HELD_OUT_SEED)
        yield process_volume(node, volume, workdir / "series")
    finally:
        node.terminate()


def test_mr_spine_labels_every_disc_and_vertebra_by_level(spine_run: NodeResult) -> None:
    _, truth = make_spine(seed=HELD_OUT_SEED)
    names = {name: value for name, value in TSS_VALUES.items() if np.any(truth == value)}
    assert len(names) >= 15, names  # cord, canal, 6-7 vertebrae, sacrum, 7 discs
    scores = dice_by_structure(spine_run, truth, names, DESCRIPTIONS)
    assert min(scores.values()) >= 0.8, scores
    unnumbered = {DESCRIPTIONS["intervertebral_disc"], DESCRIPTIONS["vertebrae"]}
    assert not unnumbered & set(spine_run.masks()), "every part has its level"


def test_mr_spine_report_names_the_landmarks_that_anchored_the_levels(
    spine_run: NodeResult,
) -> None:
    anchors = {
        str(item.ConceptCodeSequence[0].CodeMeaning)
        for item in walk_content(spine_run.report().ContentSequence)
        if item.get("ValueType") == "CODE"
        and item.ConceptNameCodeSequence[0].CodeValue == LEVEL_ANCHOR.value
    }
    assert anchors == {"T12/L1 disc", "L5/S1 disc"}


def test_mr_spine_documents_are_valid(spine_run: NodeResult) -> None:
    assert dciodvfy_errors(spine_run.seg_path) == []
    assert dciodvfy_errors(spine_run.sr_path) == []


@pytest.fixture(scope="module")
def cine_node(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    workdir = tmp_path_factory.mktemp("cine-node")
    node = _start(workdir / "node", models_dir, [_route("cmr_lv", "MR")])
    try:
        yield node
    finally:
        node.terminate()


@pytest.fixture(scope="module")
def cine_phantom() -> CinePhantom:
    return make_cine(seed=HELD_OUT_SEED)


@dataclass(frozen=True)
class CineRun:
    result: NodeResult
    files: list[Path]


@pytest.fixture(scope="module", params=["single-frame", "enhanced"])
def cine_run(
    request: pytest.FixtureRequest,
    cine_node: NodeProcess,
    cine_phantom: CinePhantom,
    tmp_path_factory: pytest.TempPathFactory,
) -> CineRun:
    folder = tmp_path_factory.mktemp(f"cine-{request.param}")
    files = write_cine(folder, cine_phantom, enhanced=request.param == "enhanced")
    return CineRun(process_files(cine_node, files), files)


def test_cmr_lv_measures_the_lv_function(cine_run: CineRun, cine_phantom: CinePhantom) -> None:
    truth = cine_phantom.truth_function
    values = {
        str(item.ConceptNameCodeSequence[0].CodeValue): float(
            item.MeasuredValueSequence[0].NumericValue
        )
        for item in walk_content(cine_run.result.report().ContentSequence)
        if item.get("ValueType") == "NUM"
    }
    assert abs(values[LV_EJECTION_FRACTION.value] - truth["ef_percent"]) <= 2.0, values
    assert values[LV_END_DIASTOLIC_VOLUME.value] == pytest.approx(truth["edv_ml"], rel=0.05)
    assert values[LV_END_SYSTOLIC_VOLUME.value] == pytest.approx(truth["esv_ml"], rel=0.05)
    assert values[LV_MASS.value] == pytest.approx(truth["mass_g"], rel=0.10)


def test_cmr_lv_seg_derives_ed_and_es_from_their_phases(
    cine_run: CineRun, cine_phantom: CinePhantom
) -> None:
    """Each segment's frames derive from the images of its phase: the trigger times of the
    referenced frames are those the phantom wrote for its ED or ES phase."""
    truth = cine_phantom.truth_function
    seg = pydicom.dcmread(cine_run.result.seg_path)
    labels = {int(d.SegmentNumber): str(d.SegmentLabel) for d in seg.SegmentSequence}
    sources = _source_triggers(cine_run.files)
    found: dict[str, set[float]] = {}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        label = labels[int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        reference = frame.DerivationImageSequence[0].SourceImageSequence[0]
        key = (str(reference.ReferencedSOPInstanceUID), reference.get("ReferencedFrameNumber"))
        found.setdefault(label.rsplit(", ", 1)[1], set()).add(round(sources[key], 3))
    written = cine_phantom.slice_trigger_times_ms
    assert found["end diastole"] <= {round(float(t), 3) for t in written[truth["ed_phase"]]}
    assert found["end systole"] <= {round(float(t), 3) for t in written[truth["es_phase"]]}
    assert len(found["end diastole"]) >= 5, found  # the LV spans most slices


def test_cmr_lv_documents_are_valid(cine_run: CineRun) -> None:
    assert dciodvfy_errors(cine_run.result.seg_path) == []
    assert dciodvfy_errors(cine_run.result.sr_path) == []


def test_cmr_lv_draws_the_volume_curve(cine_run: CineRun, cine_node: NodeProcess) -> None:
    (figure,) = cine_run.result.job["figures"]
    assert figure.endswith("/figures/lv_blood_pool_volume.png")
    response = httpx.get(f"{cine_node.http_url}{figure}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_cmr_lv_refuses_a_cine_missing_a_phase_by_name(
    cine_node: NodeProcess, cine_phantom: CinePhantom, tmp_path: Path
) -> None:
    files = write_cine(tmp_path, cine_phantom)
    files.remove(next(p for p in files if pydicom.dcmread(p).InstanceNumber == 45))
    series_uid = send_and_mark_ready(cine_node, files)
    deadline = time.monotonic() + 120
    while not (found := [j for j in jobs(cine_node, series_uid) if j["state"] == "failed"]):
        assert time.monotonic() < deadline, jobs(cine_node, series_uid)
        time.sleep(0.25)
    assert "series refused: cine_missing_phase" in found[0]["error"]


def _source_triggers(files: list[Path]) -> dict[tuple[str, int | None], float]:
    """(SOP Instance UID, frame number) -> trigger time of every frame written."""
    found: dict[tuple[str, int | None], float] = {}
    for path in files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        uid = str(dataset.SOPInstanceUID)
        if "PerFrameFunctionalGroupsSequence" not in dataset:
            found[(uid, None)] = float(dataset.TriggerTime)
            continue
        for number, item in enumerate(dataset.PerFrameFunctionalGroupsSequence, start=1):
            cardiac = item.CardiacSynchronizationSequence[0]
            found[(uid, number)] = float(cardiac.NominalCardiacTriggerDelayTime)
    return found
