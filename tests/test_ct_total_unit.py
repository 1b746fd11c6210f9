"""ct_total logic with prepared task outputs (fake runtime at the ModelRuntime seam): merge
numbering and overlap rule, bone island repair, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import ImageVolume, PipelineError, SeriesFacts
from pipelines.ct_total import CtTotalPipeline, number_structures
from pipelines.models import ModelNotInstalledError
from pipelines.postprocess import IslandChange, repair_islands
from tests.support.fake_runtime import FakeModel, FakeRuntime, constant

SHAPE = (6, 20, 30)
CT = SeriesFacts(modality="CT")


def ct_volume(shape: tuple[int, int, int] = SHAPE) -> ImageVolume:
    return ImageVolume(
        np.zeros(shape, dtype=np.int16),
        origin=(-10.0, 20.0, 30.0),
        spacing=(1.0, 1.0, 1.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
        modality="CT",
    )


def junction() -> np.ndarray:
    """T5 (1) with a rib (2) touching it; a piece of rib inside the vertebra (8 voxels, only
    touching T5) and a piece of vertebra lying on the rib (6 voxels, only touching the rib)."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1:5, 5:15, 5:12] = 1
    labels[2:4, 9:11, 12:28] = 2
    labels[2:4, 6:8, 6:8] = 2
    labels[4:5, 9:11, 20:23] = 1
    return labels


def test_structures_are_numbered_by_task_order_then_label_value() -> None:
    numbers = number_structures([{2: "rib", 1: "skull"}, {3: "liver", 1: "spleen", 2: "rib"}])

    assert numbers == {"skull": 1, "rib": 2, "spleen": 3, "liver": 4}


def test_islands_at_the_junction_go_to_the_bone_they_touch() -> None:
    repaired = repair_islands(junction(), {1: 0.25, 2: 0.25}, min_island_voxels=5)

    assert repaired.changes == (IslandChange(1, 2, 6, 1), IslandChange(2, 1, 8, 1))


def test_repaired_junction_leaves_one_component_per_bone() -> None:
    labels = junction()
    expected = labels.copy()
    expected[2:4, 6:8, 6:8] = 1
    expected[4:5, 9:11, 20:23] = 2

    repaired = repair_islands(labels, {1: 0.25, 2: 0.25}, min_island_voxels=5)

    np.testing.assert_array_equal(repaired.label_map, expected)


def test_island_goes_to_the_label_sharing_the_largest_border() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0:6, 0:10, 0:10] = 1
    labels[0:6, 0:10, 12:22] = 2
    labels[2:4, 2, 0:10] = 3  # label 3's main component (20 voxels)
    labels[2, 5, 10:12] = 3  # an island in the gap: one face on label 1, one on label 2 ...
    labels[2, 6, 11] = 3  # ... and one more on label 2

    repaired = repair_islands(labels, {1: 0.25, 2: 0.25, 3: 0.5}, min_island_voxels=1)

    assert repaired.changes == (IslandChange(3, 2, 3, 1),)


def test_small_island_touching_no_bone_is_removed() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0:4, 0:10, 0:10] = 1
    labels[5, 15, 25:28] = 1

    repaired = repair_islands(labels, {1: 0.25}, min_island_voxels=4)

    assert repaired.changes == (IslandChange(1, 0, 3, 1),)


def test_island_touching_no_bone_of_at_least_the_minimum_is_kept() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[0:4, 0:10, 0:10] = 1
    labels[5, 15, 25:29] = 1

    repaired = repair_islands(labels, {1: 0.25}, min_island_voxels=4)

    assert repaired.changes == ()


def test_labels_not_repaired_are_untouched() -> None:
    labels = junction()
    labels[0, 0, 0] = 7  # a loose voxel of a label that is not a bone

    repaired = repair_islands(labels, {1: 0.25, 2: 0.25}, min_island_voxels=5)

    assert repaired.label_map[0, 0, 0] == 7


def skeleton_runtime(**overrides: FakeModel) -> FakeRuntime:
    """Global groups, vertebrae and ribs of the junction, and an organ overlapping the rib."""
    labels = junction()
    groups = np.zeros(SHAPE, dtype=np.uint8)
    groups[labels > 0] = 2  # "vertebrae" group over both bones ...
    groups[0, 0:3, 0:3] = 2  # ... and a group-only region no finer task labels
    organ = np.zeros(SHAPE, dtype=np.uint8)
    organ[2:4, 9:11, 25:30] = 1  # liver overlaps the rib's end
    models = {
        "autoorgan_global": FakeModel({1: "skull", 2: "vertebrae"}, constant(groups)),
        "autoorgan_organ": FakeModel({1: "liver"}, constant(organ)),
        "autoorgan_vertebrae": FakeModel({1: "vertebrae_T5"}, constant((labels == 1) * 1)),
        "autoorgan_rib": FakeModel({1: "rib_left_5"}, constant((labels == 2) * 1)),
    }
    return FakeRuntime({**models, **overrides})


def run_skeleton(runtime: FakeRuntime, **options: object) -> tuple[np.ndarray, dict[str, int]]:
    models = ["autoorgan_organ", "autoorgan_vertebrae", "autoorgan_rib", "autoorgan_global"]
    pipeline = CtTotalPipeline(runtime=runtime, models=models, **options)
    result = pipeline.run(ct_volume(), CT)
    return result.label_map, {segment.name: segment.label for segment in result.segments}


def test_merged_segments_follow_the_models_order() -> None:
    _, numbers = run_skeleton(skeleton_runtime())

    assert numbers == {
        "liver": 1,
        "vertebrae_T5": 2,
        "rib_left_5": 3,
        "skull": 4,
        "vertebrae": 5,
    }


def test_coarse_group_label_stays_only_where_no_finer_task_labels() -> None:
    label_map, numbers = run_skeleton(skeleton_runtime(), repair={"enabled": False})

    assert set(np.unique(label_map[junction() > 0])) == {
        numbers["vertebrae_T5"],
        numbers["rib_left_5"],
    }
    assert (label_map[0, 0:3, 0:3] == numbers["vertebrae"]).all()


def test_later_task_wins_where_fine_tasks_overlap() -> None:
    label_map, numbers = run_skeleton(skeleton_runtime(), repair={"enabled": False})

    assert (label_map[2:4, 9:11, 25:28] == numbers["rib_left_5"]).all()
    assert (label_map[2:4, 9:11, 28:30] == numbers["liver"]).all()


def test_run_reports_the_voxels_the_repair_changed() -> None:
    pipeline = CtTotalPipeline(
        runtime=skeleton_runtime(),
        models=["autoorgan_vertebrae", "autoorgan_rib"],
        repair={"min_island_ml": 0.005},
    )

    result = pipeline.run(ct_volume(), CT)

    assert result.notes == (
        "island repair: vertebrae_T5: 6 voxels in 1 islands reassigned to rib_left_5",
        "island repair: rib_left_5: 8 voxels in 1 islands reassigned to vertebrae_T5",
        "island repair: 14 voxels reassigned, 0 removed",
    )


def test_every_piece_of_a_multi_part_bone_is_kept() -> None:
    pieces = np.zeros(SHAPE, dtype=np.uint8)
    pieces[0:4, 0:10, 0:10] = 1
    pieces[5, 15, 25] = 1  # a loose one-voxel piece, far below min_island_ml
    runtime = FakeRuntime({"hand": FakeModel({1: "phalanges_hand_left"}, constant(pieces))})
    pipeline = CtTotalPipeline(runtime=runtime, models=["hand"], repair={"bone_models": ["hand"]})

    result = pipeline.run(ct_volume(), CT)

    assert result.label_map[5, 15, 25] == 1


def test_volumes_are_measured_per_merged_segment() -> None:
    pipeline = CtTotalPipeline(
        runtime=skeleton_runtime(), models=["autoorgan_vertebrae"], repair={"enabled": False}
    )

    result = pipeline.run(ct_volume(), CT)

    assert [(m.segment_label, m.value) for m in result.measurements] == [
        (1, float((junction() == 1).sum()) / 1000.0)
    ]


def test_missing_model_raises_before_any_prediction() -> None:
    runtime = skeleton_runtime()
    pipeline = CtTotalPipeline(runtime=runtime, models=["autoorgan_vertebrae", "autoorgan_hip"])

    with pytest.raises(ModelNotInstalledError, match="model 'autoorgan_hip' is not installed"):
        pipeline.run(ct_volume(), CT)
    assert runtime.calls == []


def test_non_ct_series_is_refused() -> None:
    pipeline = CtTotalPipeline(runtime=skeleton_runtime(), models=["autoorgan_vertebrae"])

    with pytest.raises(PipelineError, match="needs a CT series"):
        pipeline.run(ct_volume(), SeriesFacts(modality="MR"))


def test_run_without_runtime_is_refused() -> None:
    pipeline = CtTotalPipeline(models=["autoorgan_vertebrae"])

    with pytest.raises(PipelineError, match="pipeline ct_total needs the model runtime"):
        pipeline.run(ct_volume(), CT)


def test_version_names_each_model_and_a_missing_one() -> None:
    pipeline = CtTotalPipeline(
        runtime=skeleton_runtime(), models=["autoorgan_vertebrae", "autoorgan_hip"]
    )

    assert pipeline.version == "1.0.0+autoorgan_vertebrae-1.0+autoorgan_hip-missing"


def test_a_model_named_twice_is_a_bad_option() -> None:
    with pytest.raises(ValueError, match="must not name a model twice"):
        CtTotalPipeline(models=["autoorgan_rib", "autoorgan_rib"])
