"""ct_abdomen logic with a prepared prediction and entropy (fake runtime at the ModelRuntime
seam): per-organ uncertainty, the review flag, organs not found, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import ImageVolume, PipelineError, PipelineResult, SeriesFacts
from pipelines.codes import MEAN_PREDICTIVE_ENTROPY, review_recommended
from pipelines.ct_abdomen import CtAbdomenPipeline
from pipelines.models import ModelNotInstalledError
from tests.support.fake_runtime import FakeModel, FakeRuntime, constant

SHAPE = (8, 16, 16)
CT = SeriesFacts(modality="CT")
ORGANS = {1: "spleen", 2: "liver", 3: "kidney_left"}


def ct_volume() -> ImageVolume:
    return ImageVolume(
        np.zeros(SHAPE, dtype=np.int16),
        origin=(0.0, 0.0, 0.0),
        spacing=(2.0, 1.0, 1.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
        modality="CT",
    )


def abdomen_runtime(spleen_entropy: float, liver_entropy: float = 0.1) -> FakeRuntime:
    """Spleen and liver (4x8x8 voxels each); the left kidney is not found."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0:4, 0:8, 0:8] = 1
    labels[4:8, 8:16, 8:16] = 2
    entropy = np.zeros(SHAPE, dtype=np.float32)
    entropy[labels == 1] = spleen_entropy
    entropy[labels == 2] = liver_entropy
    model = FakeModel(ORGANS, constant(labels), entropy=constant(entropy))
    return FakeRuntime({"abdomenatlas": model})


def run(runtime: FakeRuntime, **options: object) -> PipelineResult:
    return CtAbdomenPipeline(runtime=runtime, **options).run(ct_volume(), CT)


def test_organ_above_the_threshold_is_marked_for_review() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.5), review_entropy_threshold=0.3)

    assert result.evaluations == (review_recommended(1),)


def test_organ_below_the_threshold_is_not_marked() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.25), review_entropy_threshold=0.3)

    assert result.evaluations == ()


def test_mean_entropy_is_measured_per_found_organ() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.5, liver_entropy=0.125))

    entropies = {
        m.segment_label: m.value for m in result.measurements if m.name == MEAN_PREDICTIVE_ENTROPY
    }
    assert entropies == {1: 0.5, 2: 0.125}


def test_organ_not_found_keeps_its_segment_without_measurements() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.1))

    assert [segment.name for segment in result.segments] == ["spleen", "liver", "kidney_left"]
    assert {m.segment_label for m in result.measurements} == {1, 2}
    assert "kidney_left not found" in result.notes


def test_organ_below_min_organ_voxels_is_cleared() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.1), min_organ_voxels=257)

    assert not (result.label_map == 1).any()
    assert "spleen not found: 256 voxels, fewer than min_organ_voxels 257, cleared" in result.notes


def test_volumes_are_in_millilitres() -> None:
    result = run(abdomen_runtime(spleen_entropy=0.1))

    volumes = {m.segment_label: m.value for m in result.measurements if m.unit.value == "ml"}
    assert volumes == {1: 256 * 2.0 / 1000.0, 2: 256 * 2.0 / 1000.0}


def test_missing_model_raises_before_any_prediction() -> None:
    runtime = abdomen_runtime(spleen_entropy=0.1)
    pipeline = CtAbdomenPipeline(runtime=runtime, model="suprem")

    with pytest.raises(ModelNotInstalledError, match="model 'suprem' is not installed"):
        pipeline.run(ct_volume(), CT)
    assert runtime.calls == []


def test_non_ct_series_is_refused() -> None:
    pipeline = CtAbdomenPipeline(runtime=abdomen_runtime(spleen_entropy=0.1))

    with pytest.raises(PipelineError, match=r"ct_abdomen needs a CT series \(this one is MR\)"):
        pipeline.run(ct_volume(), SeriesFacts(modality="MR"))


def test_version_names_the_model() -> None:
    pipeline = CtAbdomenPipeline(runtime=abdomen_runtime(spleen_entropy=0.1))

    assert pipeline.version == "1.0.0+abdomenatlas-1.0"


def test_threshold_outside_zero_to_one_is_a_bad_option() -> None:
    with pytest.raises(ValueError, match="review_entropy_threshold"):
        CtAbdomenPipeline(review_entropy_threshold=1.5)
