"""mr_spine's level labelling: the counting rules, then on REAL labels (SCT's cervical T2 with its
manual vertebral levels), from which we derive what TotalSpineSeg's steps would output."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.mr_spine.labelling import (
    STEP1,
    STEP2,
    TSS_VALUES,
    disc_key,
    final_label_map,
    label_discs,
    odd_disc_mask,
    vertebra_key,
)
from pipelines.mr_spine.levels import (
    VertebraPart,
    disc_name,
    number_discs,
    number_vertebrae,
    spine_axis,
    vertebra_name,
)
from tests.support.geometry import reoriented
from tests.support.peers import shared_data
from tests.support.spine import Spine, ellipsoid, sct_cervical_spine, world_grid

SCT_T2 = ("mr", "sct_cervical_spine_nifti", "t2")
ANTERIOR_MM = 9.0  # vertebral bodies and discs lie in front of the cord


def test_names_follow_totalspineseg_levels() -> None:
    levels = json.loads(shared_data("label_maps", "totalspineseg", "levels_maps.json").read_text())
    discs = {name: level for name, level in levels.items() if "-" in name and name != "C1-C2"}
    assert {disc_name(level): level for level in range(3, 26)} == discs
    assert [vertebra_name(level) for level in (1, 7, 8, 19, 20, 24)] == [
        "C1",
        "C7",
        "T1",
        "T12",
        "L1",
        "L5",
    ]


def test_final_values_are_totalspineseg_values() -> None:
    tss = json.loads(shared_data("label_maps", "totalspineseg", "tss_map.json").read_text())
    ours = {"SC": "spinal_cord", "CSF": "spinal_canal", "sacrum": "sacrum"}
    for name, value in tss.items():
        if name in ours:
            key = ours[name]
        elif "-" in name:
            key = "intervertebral_disc_" + name.replace("-", "_")
        elif name in ("L6", "L7"):
            continue  # transitional vertebrae: TotalSpineSeg's map has them, levels do not
        else:
            key = f"vertebrae_{name}"
        assert TSS_VALUES[key] == value, name


def test_step_classes_are_totalspineseg_step_maps() -> None:
    def classes(step: str) -> dict[str, int]:
        path = shared_data("label_maps", "totalspineseg", f"nnunet_{step}.json")
        return {key: int(value) for key, value in json.loads(path.read_text()).items()}

    step1, step2 = classes("step1"), classes("step2")
    tss = json.loads(shared_data("label_maps", "totalspineseg", "tss_map.json").read_text())
    for step, ours in ((step1, STEP1), (step2, STEP2)):
        assert step[str(tss["SC"])] == ours.cord
        assert step[str(tss["CSF"])] == ours.canal
        for name, value in ours.landmarks.items():
            assert step[str(tss[name])] == value
        assert step[str(tss["C3-C4"])] == ours.disc
    assert step1[str(tss["C1"])] == STEP1.c1
    assert step1[str(tss["C2"])] == STEP1.vertebrae
    assert (step2[str(tss["T2"])], step2[str(tss["T3"])]) == (STEP2.odd, STEP2.even)
    assert step2[str(tss["sacrum"])] == STEP2.sacrum


# --- counting ------------------------------------------------------------------------------


def test_whole_spine_is_counted_from_its_landmarks() -> None:
    numbering = number_discs(23, {"C2-C3": 0, "C7-T1": 5, "T12-L1": 17, "L5-S": 22})
    assert numbering.levels == tuple(range(3, 26))
    assert numbering.anchors == ("C2-C3", "C7-T1", "T12-L1", "L5-S")
    assert numbering.notes == ()


def test_lumbar_field_of_view_anchors_on_the_lumbar_landmarks() -> None:
    numbering = number_discs(7, {"T12-L1": 1, "L5-S": 6})
    assert numbering.levels == tuple(range(19, 26))
    assert numbering.anchors == ("T12-L1", "L5-S")


def test_one_landmark_is_enough() -> None:
    assert number_discs(4, {"C7-T1": 2}).levels == (6, 7, 8, 9)


def test_c1_anchors_when_no_landmark_disc_was_found() -> None:
    numbering = number_discs(3, {}, c1_above=0)
    assert numbering.levels == (3, 4, 5)
    assert numbering.anchors == ("C1",)


def test_no_anchor_assigns_no_level() -> None:
    numbering = number_discs(3, {})
    assert numbering.levels == (None, None, None)
    assert numbering.notes == ("no landmark found: levels not assigned",)


def test_a_missed_disc_is_counted_from_the_nearer_landmark() -> None:
    # C7-T1 at 5 and T12-L1 at 16: one disc between them was missed
    numbering = number_discs(17, {"C2-C3": 0, "C7-T1": 5, "T12-L1": 16})
    assert numbering.levels[:11] == tuple(range(3, 14))  # nearer C7-T1
    assert numbering.levels[11:] == tuple(range(15, 21))  # nearer T12-L1
    assert "C7-T1 and T12-L1 are 11 discs apart, 12 expected" in numbering.notes[0]


def test_a_landmark_out_of_order_is_dropped() -> None:
    numbering = number_discs(6, {"C2-C3": 0, "C7-T1": 5, "L5-S": 2})
    assert numbering.levels == (3, 4, 5, 6, 7, 8)
    assert numbering.notes == ("landmark L5-S contradicts the others' order along the spine",)


def test_discs_counted_past_l5_s_get_no_level() -> None:
    numbering = number_discs(3, {"L5-S": 1})
    assert numbering.levels == (24, 25, None)
    assert "1 disc(s) counted beyond C2-C3 or L5-S: no level" in numbering.notes


def test_vertebrae_between_discs_take_the_upper_disc_level() -> None:
    discs = [(10.0, 3), (30.0, 4), (50.0, 5)]
    parts = [
        VertebraPart(0.0, "even"),  # C2, above C2-C3
        VertebraPart(-15.0, "odd"),  # C1, above C2
        VertebraPart(20.0, "odd"),  # C3
        VertebraPart(40.0, "even"),  # C4, in two parts
        VertebraPart(42.0, "even"),
        VertebraPart(60.0, "odd"),  # C5, below the last disc
    ]
    levels, notes = number_vertebrae(parts, discs)
    assert levels == [2, 1, 3, 4, 4, 5]
    assert notes == []


def test_a_missing_disc_is_bridged_by_parity() -> None:
    levels, notes = number_vertebrae(
        [VertebraPart(20.0, "odd"), VertebraPart(40.0, "even")], [(10.0, 3), (50.0, 5)]
    )
    assert levels == [3, 4]
    assert notes == []


def test_parity_against_the_discs_is_noted_and_the_discs_win() -> None:
    levels, notes = number_vertebrae([VertebraPart(20.0, "even")], [(10.0, 3), (30.0, 4)])
    assert levels == [3]
    assert notes == [
        "vertebra C3: step 2 calls it even, the discs around it say otherwise "
        "(the discs' level is kept)"
    ]


def test_axis_runs_superior_to_inferior_along_a_curve() -> None:
    t = np.linspace(0.0, np.pi, 200)
    curve = np.stack([np.zeros_like(t), 20 * np.sin(t), 100 * np.cos(t)], axis=1)  # S to I
    axis = spine_axis(curve, step_mm=5.0)
    places = axis.position(curve[::40])
    assert np.all(np.diff(places) > 0)
    assert places[0] < 5.0


# --- real labels ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spine() -> Spine:
    return sct_cervical_spine()


def moved(spine: Spine, order: tuple[int, int, int], flips: tuple[int, ...]) -> Spine:
    """The same patient stored on another grid (axes permuted and reversed)."""
    volume, step1 = reoriented(spine.volume, spine.step1, order, flips)
    _, step2 = reoriented(spine.volume, spine.step2, order, flips)

    def move(masks: dict[int, npt.NDArray[np.bool_]]) -> dict[int, npt.NDArray[np.bool_]]:
        return {n: reoriented(spine.volume, m, order, flips)[1] for n, m in masks.items()}

    return Spine(volume, step1, step2, move(spine.discs), move(spine.vertebrae))


GRIDS = {
    "as stored": ((0, 1, 2), ()),
    "reversed": ((0, 1, 2), (0, 1, 2)),
    "axes swapped": ((2, 0, 1), (1,)),
}


def test_derived_parts_are_the_manual_levels(spine: Spine) -> None:
    assert sorted(spine.discs) == [3, 4, 5]  # C2-C3, C3-C4, C4-C5
    assert sorted(spine.vertebrae) == [2, 3, 4, 5]
    assert all(mask.sum() > 20 for mask in [*spine.discs.values(), *spine.vertebrae.values()])
    assert not np.any(sum(m.astype(int) for m in spine.discs.values()) > 1)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_step1_discs_get_their_true_levels(spine: Spine, grid: str) -> None:
    case = moved(spine, *GRIDS[grid])
    labelling = label_discs(case.step1, case.volume, STEP1)
    found = {}
    for component, level in labelling.levels.items():
        (truth,) = [
            n for n, mask in case.discs.items() if mask[labelling.components == component].all()
        ]
        found[truth] = level
    assert found == {3: 3, 4: 4, 5: 5}
    assert labelling.numbering.anchors == ("C2-C3",)
    assert np.array_equal(odd_disc_mask(labelling), case.discs[3] | case.discs[5])


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_step2_map_gets_every_true_level(spine: Spine, grid: str) -> None:
    case = moved(spine, *GRIDS[grid])
    result = final_label_map(case.step2, case.volume, STEP2)
    for n, mask in case.discs.items():
        assert set(np.unique(result.label_map[mask])) == {TSS_VALUES[disc_key(n)]}, n
    for n, mask in case.vertebrae.items():
        assert set(np.unique(result.label_map[mask])) == {TSS_VALUES[vertebra_key(n)]}, n
    assert (result.disc_levels, result.vertebra_levels) == ((3, 4, 5), (2, 3, 4, 5))
    assert result.anchors == ("C2-C3",)
    assert result.notes == ()


def test_without_the_landmark_no_level_is_invented(spine: Spine) -> None:
    step2 = spine.step2.copy()
    step2[step2 == STEP2.landmarks["C2-C3"]] = STEP2.disc
    result = final_label_map(step2, spine.volume, STEP2)
    parts = [*spine.discs.values(), *spine.vertebrae.values()]
    assert set(np.unique(result.label_map[np.logical_or.reduce(parts)])) == {
        TSS_VALUES["intervertebral_disc"],
        TSS_VALUES["vertebrae"],
    }
    assert result.disc_levels == result.vertebra_levels == ()
    assert "no landmark found: levels not assigned" in result.notes


def test_c1_anchors_step1_when_the_landmark_is_gone(spine: Spine) -> None:
    """C1 drawn above C2 (it lies outside the labelled levels): discs are counted from it."""
    step1 = spine.step1.copy()
    step1[step1 == STEP1.landmarks["C2-C3"]] = STEP1.disc
    world = world_grid(spine.volume)
    c2 = world[spine.vertebrae[2]]
    top = c2.mean(axis=0) + np.array([0.0, 0.0, c2[:, 2].max() - c2[:, 2].mean() + 3.0])
    step1[ellipsoid(world, top, (8.0, 7.0, 1.0))] = STEP1.c1
    labelling = label_discs(step1, spine.volume, STEP1)
    assert sorted(level for level in labelling.levels.values() if level) == [3, 4, 5]
    assert labelling.numbering.anchors == ("C1",)


def test_every_final_structure_has_codes() -> None:
    from pipelines.codes import SEGMENT_CODES

    assert set(TSS_VALUES) <= set(SEGMENT_CODES)


def test_a_noisy_step_map_is_numbered_without_failing(spine: Spine) -> None:
    """An untrained model's output: random classes everywhere. Whatever it finds is kept
    (levels where they can be told, the unnumbered values otherwise) and nothing raises."""
    rng = np.random.default_rng(5)
    noisy = rng.integers(0, 12, spine.step2.shape).astype(np.uint8)
    result = final_label_map(noisy, spine.volume, STEP2)
    known = np.isin(noisy, sorted(STEP2.values))
    assert np.array_equal(result.label_map > 0, known)
