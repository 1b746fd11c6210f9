"""ct_liver_tumor logic with prepared model outputs (fake runtime at the ModelRuntime seam):
crop geometry and paste-back on an oblique grid, tumor filtering, measurements on known
shapes, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines import ImageVolume, PipelineError, PipelineResult, SeriesFacts
from pipelines.codes import LONG_AXIS, NUMBER_OF_LESIONS
from pipelines.ct_liver_tumor import CtLiverTumorPipeline, tumor_statistics
from pipelines.models import ModelNotInstalledError
from tests.support.fake_runtime import FakeModel, FakeRuntime

CT = SeriesFacts(modality="CT")
SHAPE = (20, 60, 60)
# An oblique grid: slices tilted 37 degrees about the patient's x axis, off-origin.
OBLIQUE = ((0.0, 0.6, 0.8), (0.0, 0.8, -0.6), (1.0, 0.0, 0.0))
LIVER_BOX = (slice(5, 12), slice(20, 40), slice(15, 45))
LIVER_HU = 60
TUMOR_HU = 200


def oblique_volume() -> ImageVolume:
    array = np.zeros(SHAPE, dtype=np.int16)
    array[LIVER_BOX] = LIVER_HU
    return ImageVolume(array, (-100.5, 20.25, 300.0), (2.5, 0.7, 0.8), OBLIQUE, "CT")


def threshold_model(name: str, minimum: int) -> FakeModel:
    """A model labelling every voxel of at least `minimum` HU as `name`."""
    return FakeModel({1: name}, lambda volume: np.asarray(volume.array >= minimum))


def sphere_model(centre: np.ndarray, radius_mm: float) -> FakeModel:
    """A tumor model labelling the voxels within `radius_mm` of a patient-space point, so its
    answer depends on nothing but the geometry of the volume it is given."""

    def predict(volume: ImageVolume) -> np.ndarray:
        indices = np.indices(volume.shape).reshape(3, -1).T
        distance = np.linalg.norm(volume.index_to_world(indices) - centre, axis=1)
        return (distance <= radius_mm).reshape(volume.shape)

    return FakeModel({1: "liver_tumor"}, predict)


def cascade(tumor: FakeModel, liver: FakeModel | None = None) -> FakeRuntime:
    return FakeRuntime(
        {
            "lits_liver": liver or threshold_model("liver", LIVER_HU),
            "lits_tumor": tumor,
        }
    )


def run(runtime: FakeRuntime, volume: ImageVolume, **options: object) -> PipelineResult:
    return CtLiverTumorPipeline(runtime=runtime, **options).run(volume, CT)


def test_crop_keeps_every_voxel_in_its_patient_position() -> None:
    volume = oblique_volume()
    box = (slice(3, 9), slice(10, 50), slice(7, 20))

    crop = volume.crop(box)

    inside = np.array([[0, 0, 0], [5, 39, 12], [2, 7, 4]])
    np.testing.assert_allclose(
        crop.index_to_world(inside), volume.index_to_world(inside + np.array([3, 10, 7]))
    )


def test_tumor_model_sees_the_liver_box_with_margin() -> None:
    volume = oblique_volume()
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))

    run(runtime, volume, margin_mm=10.0)

    model, crop = runtime.calls[1]
    # 10 mm is 4, 15 and 13 voxels at 2.5, 0.7 and 0.8 mm.
    assert (model, crop.shape) == ("lits_tumor", (15, 50, 56))
    np.testing.assert_allclose(crop.origin, volume.index_to_world([1, 5, 2]))


def test_pasted_tumor_lands_where_it_is_in_patient_space() -> None:
    volume = oblique_volume()
    centre = volume.index_to_world([8, 30, 30])
    expected = sphere_model(centre, 4.0).predict(volume)

    result = run(cascade(sphere_model(centre, 4.0)), volume)

    np.testing.assert_array_equal(result.label_map == 2, expected)


def test_liver_segment_is_the_liver_without_its_tumor() -> None:
    volume = oblique_volume()
    centre = volume.index_to_world([8, 30, 30])

    result = run(cascade(sphere_model(centre, 4.0)), volume)

    liver = np.zeros(SHAPE, dtype=bool)
    liver[LIVER_BOX] = True
    np.testing.assert_array_equal(result.label_map == 1, liver & (result.label_map != 2))


def test_tumor_components_below_the_minimum_are_dropped() -> None:
    volume = oblique_volume()
    volume.array[8, 22, 16:45] = TUMOR_HU  # 29 voxels
    volume.array[10, 36, 15:45] = TUMOR_HU  # 30 voxels
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))

    result = run(runtime, volume, min_tumor_voxels=30)

    assert np.count_nonzero(result.label_map == 2) == 30
    assert "tumor: 1 components of fewer than 30 voxels dropped (29 voxels)" in result.notes


def test_tumor_outside_the_liver_is_dropped() -> None:
    volume = oblique_volume()
    runtime = cascade(threshold_model("liver_tumor", 0))  # everything in the box is "tumor"

    result = run(runtime, volume)

    outside = 15 * 50 * 56 - 7 * 20 * 30
    assert f"tumor: {outside} voxels outside the liver dropped" in result.notes


def test_only_the_largest_liver_component_is_kept() -> None:
    volume = oblique_volume()
    volume.array[0, 0, 0:5] = LIVER_HU
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))

    result = run(runtime, volume)

    assert not result.label_map[0, 0, 0:5].any()
    assert "liver: 5 voxels outside the largest liver component dropped" in result.notes


def test_tumor_count_and_diameter_are_measured_on_the_tumor_segment() -> None:
    volume = oblique_volume()
    volume.array[6:8, 22:26, 20:30] = TUMOR_HU  # 80 voxels
    volume.array[10, 36, 30:40] = TUMOR_HU  # 10 voxels
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))

    result = run(runtime, volume, min_tumor_voxels=5)

    values = {m.name: m.value for m in result.measurements if m.segment_label == 2}
    # In a slice of the largest tumor: 9 columns of 0.8 mm along x, 3 rows of 0.7 mm tilted
    # so that 0.8 of them lies along y.
    assert values[NUMBER_OF_LESIONS] == 2.0
    assert values[LONG_AXIS] == pytest.approx(math.hypot(9 * 0.8, 3 * 0.7 * 0.8))


def test_statistics_of_two_tumors_on_an_axial_stack() -> None:
    axial = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
    volume = ImageVolume(np.zeros((10, 20, 20)), (0.0, 0.0, 0.0), (2.0, 0.7, 0.8), axial)
    tumor = np.zeros(volume.shape, dtype=bool)
    tumor[0:3, 0:5, 0:9] = True
    tumor[8:10, 15:17, 15:17] = True

    stats = tumor_statistics(tumor, volume)

    assert (stats.count, stats.total_voxels, stats.largest_voxels) == (2, 143, 135)
    assert stats.largest_diameter_mm == pytest.approx(math.hypot(4 * 0.7, 8 * 0.8))


def test_diameter_of_a_coronal_stack_is_measured_in_axial_planes() -> None:
    coronal = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0))
    volume = ImageVolume(np.zeros((6, 12, 8)), (0.0, 0.0, 0.0), (1.5, 1.0, 0.5), coronal)
    tumor = np.zeros(volume.shape, dtype=bool)
    tumor[0:4, 2, 0:6] = True  # one axial plane: 3 slices by 5 columns apart
    tumor[0, 0:10, 0] = True  # 9 mm head to foot: in no axial plane

    stats = tumor_statistics(tumor, volume)

    assert stats.largest_diameter_mm == pytest.approx(math.hypot(3 * 1.5, 5 * 0.5))


def test_no_liver_is_a_result_with_a_note() -> None:
    volume = oblique_volume()
    volume.array[:] = 0
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))

    result = run(runtime, volume)

    assert not result.label_map.any()
    assert result.notes == ("no liver found: the liver model labelled no voxel as liver",)
    assert [model for model, _ in runtime.calls] == ["lits_liver"]


def test_tumor_model_without_a_tumor_label_is_refused() -> None:
    runtime = cascade(threshold_model("liver", TUMOR_HU))
    pipeline = CtLiverTumorPipeline(runtime=runtime)

    with pytest.raises(PipelineError, match="model lits_tumor does not label 'liver_tumor'"):
        pipeline.run(oblique_volume(), CT)


def test_missing_model_raises_before_any_prediction() -> None:
    runtime = cascade(threshold_model("liver_tumor", TUMOR_HU))
    pipeline = CtLiverTumorPipeline(runtime=runtime, tumor_model="lits_tumor_v2")

    with pytest.raises(ModelNotInstalledError, match="model 'lits_tumor_v2' is not installed"):
        pipeline.run(oblique_volume(), CT)
    assert runtime.calls == []


def test_non_ct_series_is_refused() -> None:
    pipeline = CtLiverTumorPipeline(runtime=cascade(threshold_model("liver_tumor", TUMOR_HU)))

    with pytest.raises(PipelineError, match="ct_liver_tumor needs a CT series"):
        pipeline.run(oblique_volume(), SeriesFacts(modality="PT"))
