"""cmr_lv's measurement with the phantom's own truth as the network's answer (fake runtime at
the ModelRuntime seam): a perfect segmentation gives the phantom's LV function exactly."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.phantom_cine import CinePhantom, make_cine
from pipelines import ImageVolume, PipelineError, SeriesFacts, create_pipeline
from pipelines.cmr_lv import CmrLvPipeline, lv_function
from pipelines.codes import (
    GRAM,
    LV_EJECTION_FRACTION,
    LV_END_DIASTOLIC_VOLUME,
    LV_END_SYSTOLIC_VOLUME,
    LV_MASS,
    PERCENT,
    STROKE_VOLUME,
    VOLUME,
)
from pipelines.result import CineResult
from tests.support.fake_runtime import FakeModel, FakeRuntime

MR = SeriesFacts(modality="MR")
LABELS = {1: "lv_blood_pool", 2: "lv_myocardium"}


@pytest.fixture(scope="module")
def phantom() -> CinePhantom:
    return make_cine(seed=4, phases=20, slices=10, matrix=64, pixel_mm=3.5)


def perfect_runtime(phantom: CinePhantom) -> FakeRuntime:
    """A network that answers each phase with its truth."""
    pairs = zip(phantom.cine.phases, phantom.truths, strict=True)
    truths = {id(phase.array): truth for phase, truth in pairs}

    def predict(volume: ImageVolume) -> np.ndarray:
        return truths[id(volume.array)]

    return FakeRuntime({"cmr_lv_resunet": FakeModel(LABELS, predict)})


def run(phantom: CinePhantom) -> CineResult:
    return CmrLvPipeline(runtime=perfect_runtime(phantom)).run_cine(phantom.cine, MR)


def test_a_perfect_segmentation_gives_the_true_lv_function(phantom: CinePhantom) -> None:
    cine_result = run(phantom)
    truth = phantom.truth_function
    values = {m.name: m.value for m in cine_result.result.measurements if m.name != VOLUME}

    assert cine_result.phases == (truth["ed_phase"], truth["es_phase"])
    assert values[LV_END_DIASTOLIC_VOLUME] == pytest.approx(truth["edv_ml"])
    assert values[LV_END_SYSTOLIC_VOLUME] == pytest.approx(truth["esv_ml"])
    assert values[STROKE_VOLUME] == pytest.approx(truth["sv_ml"])
    assert values[LV_EJECTION_FRACTION] == pytest.approx(truth["ef_percent"])
    assert values[LV_MASS] == pytest.approx(truth["mass_g"])


def test_measurements_sit_on_their_segments_with_ucum_units(phantom: CinePhantom) -> None:
    measurements = run(phantom).result.measurements
    placed = {(m.name.value, m.segment_label, m.unit.value) for m in measurements}
    assert {
        (LV_END_DIASTOLIC_VOLUME.value, 1, "ml"),
        (LV_END_SYSTOLIC_VOLUME.value, 3, "ml"),
        (LV_MASS.value, 2, GRAM.value),
        (STROKE_VOLUME.value, None, "ml"),
        (LV_EJECTION_FRACTION.value, None, PERCENT.value),
    } <= placed
    assert {m.segment_label for m in measurements if m.name == VOLUME} == {1, 2, 3, 4}


def test_label_map_is_ed_over_es(phantom: CinePhantom) -> None:
    cine_result = run(phantom)
    ed, es = cine_result.phases
    slices = phantom.cine.grid.shape[0]
    label_map = cine_result.result.label_map
    assert label_map.shape == (2 * slices, *phantom.cine.grid.shape[1:])
    assert np.array_equal(label_map[:slices] == 1, phantom.truths[ed] == 1)
    assert np.array_equal(label_map[:slices] == 2, phantom.truths[ed] == 2)
    assert np.array_equal(label_map[slices:] == 3, phantom.truths[es] == 1)
    assert np.array_equal(label_map[slices:] == 4, phantom.truths[es] == 2)
    assert [s.description for s in cine_result.result.segments] == [
        "LV blood pool, end diastole",
        "LV myocardium, end diastole",
        "LV blood pool, end systole",
        "LV myocardium, end systole",
    ]


def test_the_volume_curve_spans_the_cycle(phantom: CinePhantom) -> None:
    (curve,) = run(phantom).curves
    blood, _ = phantom.volumes_ml
    assert curve.y == pytest.approx(tuple(blood))
    assert curve.x == pytest.approx(phantom.cine.trigger_times_ms)
    assert curve.markers == {"ED": int(np.argmax(blood)), "ES": int(np.argmin(blood))}


def test_lv_function_takes_the_first_phase_on_ties() -> None:
    function = lv_function([100.0, 100.0, 40.0, 40.0, 90.0], [50.0] * 5, 1.05)
    assert (function.ed, function.es) == (0, 2)
    assert function.ef_percent == pytest.approx(60.0)
    assert function.mass_g == pytest.approx(52.5)


def test_no_blood_pool_anywhere_is_refused() -> None:
    with pytest.raises(PipelineError, match="no LV blood pool found in any phase"):
        lv_function([0.0, 0.0], [0.0, 0.0])


def test_a_model_without_the_lv_labels_is_refused(phantom: CinePhantom) -> None:
    runtime = perfect_runtime(phantom)
    runtime.models["cmr_lv_resunet"].labels = {1: "lv_blood_pool"}
    with pytest.raises(PipelineError, match="labels no lv_myocardium"):
        CmrLvPipeline(runtime=runtime).run_cine(phantom.cine, MR)


def test_a_ct_or_a_plain_volume_is_refused(phantom: CinePhantom) -> None:
    pipeline = CmrLvPipeline(runtime=perfect_runtime(phantom))
    with pytest.raises(PipelineError, match="needs a MR series"):
        pipeline.run_cine(phantom.cine, SeriesFacts(modality="CT"))
    with pytest.raises(PipelineError, match="takes a cine series"):
        pipeline.run(phantom.cine.grid, MR)


def test_registered_as_a_cine_pipeline() -> None:
    pipeline = create_pipeline("cmr_lv", {"model": "lv"})
    assert getattr(pipeline, "input_kind", None) == "cine"
    assert pipeline.version == "1.0.0"


def test_a_cine_of_too_few_slices_is_refused() -> None:
    phantom = make_cine(seed=2, phases=4, slices=2, matrix=32, pixel_mm=7.0)
    pipeline = CmrLvPipeline(runtime=perfect_runtime(phantom))
    with pytest.raises(PipelineError, match="needs at least 3 slice locations"):
        pipeline.run_cine(phantom.cine, MR)


def test_a_series_of_too_few_phases_is_refused() -> None:
    phantom = make_cine(seed=2, phases=1, slices=4, matrix=32, pixel_mm=7.0)
    pipeline = CmrLvPipeline(runtime=perfect_runtime(phantom))
    with pytest.raises(PipelineError, match="needs at least 8 phases \\(this series has 1\\)"):
        pipeline.run_cine(phantom.cine, MR)
