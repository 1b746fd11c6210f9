"""mr_spine's chaining with prepared step outputs (fake runtime at the ModelRuntime seam): the
step maps are those SCT's real cervical levels give (tests/support/spine.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import PipelineError, SeriesFacts, create_pipeline
from pipelines.codes import LEVEL_ANCHOR, MILLILITER, REVIEW_RECOMMENDED, VOLUME
from pipelines.mr_spine import MrSpinePipeline
from pipelines.mr_spine.labelling import STEP1, STEP2, TSS_VALUES
from pipelines.result import PipelineResult
from tests.support.fake_runtime import FakeModel, FakeRuntime, constant
from tests.support.peers import shared_data
from tests.support.spine import Spine, sct_cervical_spine

MR = SeriesFacts(modality="MR")


def step_labels(step: str) -> dict[int, str]:
    path = shared_data("label_maps", "totalspineseg", f"nnunet_{step}.json")
    return {value: f"class_{value}" for value in sorted(set(json.loads(path.read_text()).values()))}


@pytest.fixture(scope="module")
def spine() -> Spine:
    return sct_cervical_spine()


def runtime_for(step1: np.ndarray, step2: np.ndarray) -> FakeRuntime:
    return FakeRuntime(
        {
            "totalspineseg_step1": FakeModel(step_labels("step1"), constant(step1)),
            "totalspineseg_step2": FakeModel(step_labels("step2"), constant(step2)),
        }
    )


def run(spine: Spine, runtime: FakeRuntime) -> PipelineResult:
    return MrSpinePipeline(runtime=runtime).run(spine.volume, MR)


def test_every_structure_is_labelled_by_level(spine: Spine) -> None:
    result = run(spine, runtime_for(spine.step1, spine.step2))

    assert [segment.name for segment in result.segments] == [
        "spinal_cord",
        "spinal_canal",
        "vertebrae_C2",
        "vertebrae_C3",
        "vertebrae_C4",
        "vertebrae_C5",
        "intervertebral_disc_C2_C3",
        "intervertebral_disc_C3_C4",
        "intervertebral_disc_C4_C5",
    ]
    for segment in result.segments:
        assert segment.label == TSS_VALUES[segment.name]
    for level, mask in spine.discs.items():
        name = {3: "intervertebral_disc_C2_C3", 4: "intervertebral_disc_C3_C4"}.get(
            level, "intervertebral_disc_C4_C5"
        )
        assert np.all(result.label_map[mask] == TSS_VALUES[name])


def test_step2_gets_the_odd_discs_as_its_second_channel(spine: Spine) -> None:
    runtime = runtime_for(spine.step1, spine.step2)
    run(spine, runtime)

    assert [model for model, _ in runtime.extra_channels] == [
        "totalspineseg_step1",
        "totalspineseg_step2",
    ]
    assert runtime.extra_channels[0][1] == ()
    (odd,) = runtime.extra_channels[1][1]
    assert odd.dtype == np.float32
    assert np.array_equal(odd > 0, spine.discs[3] | spine.discs[5])  # C2-C3, C4-C5


def test_volumes_and_the_anchor_are_reported(spine: Spine) -> None:
    result = run(spine, runtime_for(spine.step1, spine.step2))

    volumes = {m.segment_label: m.value for m in result.measurements if m.name == VOLUME}
    assert set(volumes) == {segment.label for segment in result.segments}
    assert all(m.unit == MILLILITER for m in result.measurements)
    c3 = TSS_VALUES["vertebrae_C3"]
    expected = (result.label_map == c3).sum() * spine.volume.voxel_volume_mm3 / 1000
    assert volumes[c3] == pytest.approx(expected)
    (anchor,) = result.evaluations
    assert (anchor.name, anchor.value.value, anchor.value.meaning) == (
        LEVEL_ANCHOR,
        "1078209008",
        "C2/C3 disc",
    )
    assert anchor.segment_label is None
    assert result.notes[-1] == (
        "levels found: discs C2-C3, C3-C4, C4-C5; vertebrae C2, C3, C4, C5; anchored by C2-C3"
    )


def test_without_a_landmark_the_parts_come_back_without_levels_for_review(spine: Spine) -> None:
    step1, step2 = spine.step1.copy(), spine.step2.copy()
    step1[step1 == STEP1.landmarks["C2-C3"]] = STEP1.disc
    step2[step2 == STEP2.landmarks["C2-C3"]] = STEP2.disc
    result = run(spine, runtime_for(step1, step2))

    assert {segment.name for segment in result.segments} == {
        "spinal_cord",
        "spinal_canal",
        "vertebrae",
        "intervertebral_disc",
    }
    assert [e.value for e in result.evaluations] == [REVIEW_RECOMMENDED]
    assert "no level landmark found" in result.notes[-1]


def test_specks_are_dropped_with_a_note(spine: Spine) -> None:
    step2 = spine.step2.copy()
    empty = np.argwhere(step2 == 0)[0]
    step2[tuple(empty)] = STEP2.odd
    result = run(spine, runtime_for(spine.step1, step2))

    assert result.label_map[tuple(empty)] == 0
    assert any("1 part(s) of class 7 under min_part_voxels 10 dropped" in n for n in result.notes)


def test_a_ct_series_is_refused(spine: Spine) -> None:
    pipeline = MrSpinePipeline(runtime=runtime_for(spine.step1, spine.step2))
    with pytest.raises(PipelineError, match=r"mr_spine needs a MR series \(this one is CT\)"):
        pipeline.run(spine.volume, SeriesFacts(modality="CT"))


def test_a_step_model_without_totalspineseg_classes_is_refused(spine: Spine) -> None:
    runtime = runtime_for(spine.step1, spine.step2)
    runtime.models["totalspineseg_step2"] = FakeModel({1: "disc"}, constant(spine.step2))
    expected = r"step 2 has classes \[1, 2, 3, 4, 5, 7, 8, 9, 10, 11\]"
    with pytest.raises(PipelineError, match=expected):
        run(spine, runtime)


def test_registered_with_its_models_in_the_version() -> None:
    pipeline = create_pipeline("mr_spine", {"step1_model": "a", "step2_model": "b"})
    assert pipeline.version == "1.0.0"
    assert isinstance(pipeline, MrSpinePipeline)
    assert pipeline.required_models == ("a", "b")
