"""`dicom-node evaluate`: metrics on shapes with known answers, and real label maps as files.

Real data: TotalSegmentator's reference label map and its "fast" model's output of the same
CT (../shared/data/ct/totalseg_example_ct_nifti), dcmqi's overlapping and LABELMAP SEGs, and
SEGs written by the node's own writer from a phantom CT series.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
import SimpleITK as sitk
import torch
from monai.metrics.hausdorff_distance import compute_hausdorff_distance
from scipy import ndimage

from dicom_node.evaluation import (
    EvaluationError,
    EvaluationReport,
    GridMismatchError,
    LabelImage,
    SegmentInfo,
    UnreadableInputError,
    compare_label_images,
    dice,
    hausdorff_distance_95,
    iou,
    match_structures,
    read_label_image,
    read_label_names,
    score_masks,
)
from dicom_node.evaluation.grid import Grid
from dicom_node.phantom import make_torso, write_labels, write_series
from pipelines.base import segment_volumes
from pipelines.ct_basic import LABELS, SEGMENTS
from pipelines.result import PipelineResult
from pipelines.volume import ImageVolume
from seg_writer import AlgorithmInfo, SourceImage, WriterOptions, write_results
from tests.support.peers import shared_data

Mask = npt.NDArray[np.bool_]
TOTALSEG = ("ct", "totalseg_example_ct_nifti")


def cubes(offset: int, shape: tuple[int, int, int] = (24, 24, 24)) -> tuple[Mask, Mask]:
    """Two 10-voxel cubes, the second moved by `offset` voxels along the slice axis."""
    first = np.zeros(shape, dtype=bool)
    second = np.zeros(shape, dtype=bool)
    first[5:15, 5:15, 5:15] = True
    second[5 + offset : 15 + offset, 5:15, 5:15] = True
    return first, second


def score_of(report: EvaluationReport, name: str) -> Any:
    (found,) = [item.scores for item in report.structures if item.structure.name == name]
    return found


# --- metrics on hand-made shapes -------------------------------------------------------------


def test_dice_of_cubes_two_voxels_apart_is_their_overlap_share() -> None:
    first, second = cubes(2)
    assert dice(first, second) == pytest.approx(2 * 800 / 2000)


def test_iou_of_cubes_two_voxels_apart_is_intersection_over_union() -> None:
    first, second = cubes(2)
    assert iou(first, second) == pytest.approx(800 / 1200)


def test_hd95_of_cubes_two_voxels_apart_is_two_slice_spacings() -> None:
    first, second = cubes(2)
    assert hausdorff_distance_95(first, second, (1.5, 0.7, 0.7)) == pytest.approx(3.0)


def test_hd95_of_one_voxel_slabs_is_their_distance() -> None:
    first = np.zeros((10, 12, 12), dtype=bool)
    second = np.zeros((10, 12, 12), dtype=bool)
    first[2], second[7] = True, True
    assert hausdorff_distance_95(first, second, (2.0, 1.0, 1.0)) == pytest.approx(10.0)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecated argument
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_equals_monai_compute_hausdorff_distance(seed: int) -> None:
    random = np.random.default_rng(seed)
    blobs = [ndimage.gaussian_filter(random.random((20, 30, 25)), 3) > 0.5 for _ in range(2)]
    spacing = [2.5, 0.7, 1.1]
    expected = compute_hausdorff_distance(
        torch.from_numpy(blobs[0][None, None]),
        torch.from_numpy(blobs[1][None, None]),
        include_background=True,
        percentile=95,
        spacing=spacing,
    )
    found = hausdorff_distance_95(blobs[0], blobs[1], spacing)
    assert found == pytest.approx(float(expected), rel=1e-5)


def test_two_empty_masks_agree_completely() -> None:
    empty = np.zeros((4, 4, 4), dtype=bool)
    scores = score_masks(empty, empty, (1.0, 1.0, 1.0))
    assert (scores.dice, scores.iou) == (1.0, 1.0)


def test_hd95_is_undefined_when_one_mask_is_empty() -> None:
    first, _ = cubes(0)
    assert math.isnan(hausdorff_distance_95(first, np.zeros_like(first), (1.0, 1.0, 1.0)))


def test_volumes_are_voxel_counts_times_voxel_volume_in_ml() -> None:
    first, second = cubes(0)
    second[15, 5:15, 5:15] = True  # one more slice of 100 voxels
    scores = score_masks(second, first, (2.0, 0.5, 0.5))
    volumes = (scores.prediction_ml, scores.reference_ml, scores.volume_difference_percent)
    assert volumes == pytest.approx((0.55, 0.5, 10.0))


def test_volume_difference_percent_is_undefined_without_reference_volume() -> None:
    first, _ = cubes(0)
    scores = score_masks(first, np.zeros_like(first), (1.0, 1.0, 1.0))
    assert math.isnan(scores.volume_difference_percent)


# --- label names ----------------------------------------------------------------------------


def test_label_names_read_from_value_to_name(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"0": "background", "1": "liver", "5": "spleen"}))
    assert read_label_names(path) == {1: "liver", 5: "spleen"}


def test_label_names_read_from_nnunet_dataset_json(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"background": 0, "liver": 1}, "file_ending": ".nii"}))
    assert read_label_names(path) == {1: "liver"}


def test_fractional_values_are_not_a_label_map(tmp_path: Path) -> None:
    path = tmp_path / "probabilities.npy"
    np.save(path, np.full((2, 2, 2), 0.5))
    with pytest.raises(UnreadableInputError, match="whole numbers"):
        read_label_image(path)


# --- pairing structures ---------------------------------------------------------------------


def labelled(values: dict[int, SegmentInfo]) -> LabelImage:
    layer = np.zeros((1, 1, max(values) + 1), dtype=np.uint8)
    layer[0, 0, list(values)] = list(values)
    return LabelImage((layer,), None, values)


def test_structures_pair_by_the_node_name_and_segment_label() -> None:
    prediction = labelled({3: SegmentInfo("lung_left", ("Left lung",))})
    reference = labelled({1: SegmentInfo("Left lung")})
    (structure,) = match_structures(prediction, reference)
    assert (structure.prediction_value, structure.reference_value) == (3, 1)


def test_structures_pair_by_property_type_code_when_names_differ() -> None:
    prediction = labelled({2: SegmentInfo("organ 2", code=("SCT", "10200004", None))})
    reference = labelled({1: SegmentInfo("Liver", code=("SCT", "10200004", None))})
    (structure,) = match_structures(prediction, reference)
    assert (structure.prediction_value, structure.reference_value) == (2, 1)


def test_codes_with_another_laterality_do_not_pair() -> None:
    prediction = labelled({1: SegmentInfo("a", code=("SCT", "64033007", "7771000"))})
    reference = labelled({1: SegmentInfo("b", code=("SCT", "64033007", "24028007"))})
    pairs = [
        (s.prediction_value, s.reference_value) for s in match_structures(prediction, reference)
    ]
    assert pairs == [(None, 1), (1, None)]


# --- NIfTI against NIfTI: the TotalSegmentator example --------------------------------------


@pytest.fixture(scope="module")
def totalseg_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TotalSegmentator's `total` class map (value -> name) as a label-name file."""
    class_map = json.loads(
        shared_data(
            "ct", "totalseg_example_ct_dicom", "reference_seg",
            "totalsegmentator_class_map_total_and_total_mr.json",
        ).read_text()
    )["class_map"]["total"]  # fmt: skip
    path = tmp_path_factory.mktemp("names") / "total.json"
    path.write_text(json.dumps(class_map))
    return path


@pytest.fixture(scope="module")
def totalseg_reference(totalseg_names: Path) -> LabelImage:
    path = shared_data(*TOTALSEG, "example_seg.nii.gz")
    return read_label_image(path, read_label_names(totalseg_names))


def test_totalseg_reference_against_itself_is_perfect(totalseg_reference: LabelImage) -> None:
    report = compare_label_images(totalseg_reference, totalseg_reference)
    assert len(report.structures) == 41
    assert {(item.scores.dice, item.scores.hd95_mm) for item in report.structures} == {(1.0, 0.0)}


def perturbed(image: LabelImage, change: Any) -> LabelImage:
    layer = image.layers[0].copy()
    change(layer)
    return LabelImage((layer,), image.grid, image.segments)


def test_a_structure_missing_from_the_prediction_scores_zero(
    totalseg_reference: LabelImage,
) -> None:
    prediction = perturbed(totalseg_reference, lambda layer: layer.__setitem__(layer == 1, 0))
    spleen = score_of(compare_label_images(prediction, totalseg_reference), "spleen")
    assert (spleen.dice, spleen.prediction_ml, math.isnan(spleen.hd95_mm)) == (0.0, 0.0, True)


def test_a_liver_shifted_by_one_slice_scores_as_computed_by_hand(
    totalseg_reference: LabelImage,
) -> None:
    liver = totalseg_reference.layers[0] == 5

    def shift(layer: npt.NDArray[np.uint8]) -> None:
        layer[layer == 5] = 0
        layer[1:][liver[:-1]] = 5

    prediction = perturbed(totalseg_reference, shift)
    scores = score_of(compare_label_images(prediction, totalseg_reference), "liver")
    moved = np.zeros_like(liver)
    moved[1:] = liver[:-1]
    assert scores.dice == pytest.approx(dice(moved, liver))


def test_totalseg_fast_model_against_the_reference(
    totalseg_names: Path, totalseg_reference: LabelImage
) -> None:
    fast = read_label_image(
        shared_data(*TOTALSEG, "example_seg_fast.nii.gz"), read_label_names(totalseg_names)
    )
    liver = score_of(compare_label_images(fast, totalseg_reference), "liver")
    expected = dice(fast.layers[0] == 5, totalseg_reference.layers[0] == 5)
    assert (liver.dice, liver.hd95_mm) == (pytest.approx(expected), 3.0)


def write_nifti(path: Path, array: npt.NDArray[np.uint8], grid: Grid) -> Path:
    image: Any = sitk.GetImageFromArray(array)
    image.SetOrigin(grid.origin)
    image.SetSpacing(tuple(reversed(grid.spacing)))
    image.SetDirection(np.column_stack(grid.direction[::-1]).ravel().tolist())
    sitk.WriteImage(image, str(path))
    return path


def test_a_nifti_stored_upside_down_is_the_same_label_map(
    totalseg_reference: LabelImage, tmp_path: Path
) -> None:
    grid = totalseg_reference.grid
    assert grid is not None
    # Slices stored last to first: origin at the last slice, the slice axis reversed.
    last = grid.affine @ np.array([grid.shape[0] - 1, 0, 0, 1.0])
    x, y, z = grid.direction[0]
    flipped = Grid(
        grid.shape,
        (float(last[0]), float(last[1]), float(last[2])),
        grid.spacing,
        ((-x, -y, -z), grid.direction[1], grid.direction[2]),
    )
    path = write_nifti(tmp_path / "flipped.nii.gz", totalseg_reference.layers[0][::-1], flipped)
    report = compare_label_images(read_label_image(path), totalseg_reference)
    assert report.prediction_resampled
    assert {item.scores.dice for item in report.structures} == {1.0}


def test_prediction_beyond_the_reference_grid_is_counted_whole(tmp_path: Path) -> None:
    grid = Grid.unit((10, 10, 10), (2.0, 1.0, 1.0))
    reference = np.zeros(grid.shape, dtype=np.uint8)
    reference[6:10, 2:6, 2:6] = 1
    prediction = np.zeros(grid.shape, dtype=np.uint8)
    prediction[0:8, 2:6, 2:6] = 1
    # The prediction's slice 0 is the reference's slice 6: its labels reach 4 slices beyond.
    shifted = Grid((10, 10, 10), (0.0, 0.0, 12.0), (2.0, 1.0, 1.0), grid.direction)
    report = compare_label_images(
        read_label_image(write_nifti(tmp_path / "p.nii", prediction, shifted)),
        read_label_image(write_nifti(tmp_path / "r.nii", reference, grid)),
    )
    scores = score_of(report, "label 1")
    assert (report.grid.shape, scores.prediction_ml, scores.dice) == (
        (14, 10, 10), pytest.approx(8 * 16 * 2 / 1000), pytest.approx(2 * 64 / (128 + 64)),
    )  # fmt: skip


def test_npy_of_another_shape_cannot_share_the_grid(
    totalseg_reference: LabelImage, tmp_path: Path
) -> None:
    path = tmp_path / "small.npy"
    np.save(path, np.zeros((3, 4, 5), dtype=np.uint8))
    with pytest.raises(GridMismatchError, match="without geometry"):
        compare_label_images(read_label_image(path), totalseg_reference)


def test_labels_restrict_the_structures_scored(totalseg_reference: LabelImage) -> None:
    report = compare_label_images(totalseg_reference, totalseg_reference, labels=["liver", "2"])
    assert [item.structure.name for item in report.structures] == ["kidney_right", "liver"]


def test_labels_naming_no_structure_are_an_error(totalseg_reference: LabelImage) -> None:
    with pytest.raises(EvaluationError, match="'unicorn' is no structure"):
        compare_label_images(totalseg_reference, totalseg_reference, labels=["unicorn"])


# --- DICOM SEG ------------------------------------------------------------------------------

ALGORITHM = AlgorithmInfo("ct_basic", "1.0")
OPTIONS = WriterOptions(software_versions="0.1.0")


def phantom_series(folder: Path, seed: int) -> tuple[ImageVolume, npt.NDArray[np.uint8], list[Any]]:
    volume, truth = make_torso((16, 48, 48), (10.0, 8.0, 8.0), seed)
    paths = write_series(folder, volume)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    return volume, truth, headers


def write_seg(
    path: Path, headers: list[Any], labels: npt.NDArray[np.uint8], volume: ImageVolume
) -> Path:
    result = PipelineResult(labels, SEGMENTS, segment_volumes(labels, volume, SEGMENTS))
    documents = write_results([SourceImage(h) for h in headers], result, ALGORITHM, OPTIONS)
    documents.segmentation.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A phantom CT series, a SEG of its truth written by the node, the truth as NIfTI and
    names, a SEG of an eroded truth, and a SEG of another series (frame of reference)."""
    folder = tmp_path_factory.mktemp("phantom")
    volume, truth, headers = phantom_series(folder / "ct", seed=0)
    # Nothing on the first 3 and last 2 slices: the SEG has no frames there, so its grid is
    # shorter than the CT's (and the NIfTI's).
    truth[:3], truth[-2:] = 0, 0
    eroded = truth.copy()
    eroded[(truth == LABELS["body"]) & ~ndimage.binary_erosion(truth == LABELS["body"])] = 0
    names = folder / "names.json"
    names.write_text(json.dumps({str(value): name for name, value in LABELS.items()}))
    write_labels(folder / "truth.nii.gz", truth, volume)
    np.save(folder / "eroded.npy", eroded)
    other_volume, other_truth, other_headers = phantom_series(folder / "other", seed=1)
    return {
        "seg": write_seg(folder / "seg.dcm", headers, truth, volume),
        "eroded_seg": write_seg(folder / "eroded.dcm", headers, eroded, volume),
        "other_seg": write_seg(folder / "other.dcm", other_headers, other_truth, other_volume),
        "nifti": folder / "truth.nii.gz",
        "eroded": folder / "eroded.npy",
        "names": names,
    }


def test_node_seg_against_the_nifti_of_its_label_map_is_perfect(
    phantom: dict[str, Path],
) -> None:
    report = compare_label_images(
        read_label_image(phantom["seg"]),
        read_label_image(phantom["nifti"], read_label_names(phantom["names"])),
    )
    paired = {(item.structure.name, item.scores.dice) for item in report.structures}
    assert (report.prediction_resampled, paired) == (True, {(name, 1.0) for name in LABELS})


def test_seg_against_seg_scores_the_eroded_body_as_computed_by_hand(
    phantom: dict[str, Path],
) -> None:
    truth = read_label_image(phantom["nifti"]).layers[0]
    eroded = np.load(phantom["eroded"])
    report = compare_label_images(
        read_label_image(phantom["eroded_seg"]), read_label_image(phantom["seg"])
    )
    expected = dice(eroded == LABELS["body"], truth == LABELS["body"])
    assert score_of(report, "Body").dice == pytest.approx(expected)


def test_segs_of_different_frames_of_reference_cannot_be_compared(
    phantom: dict[str, Path],
) -> None:
    prediction = read_label_image(phantom["other_seg"])
    with pytest.raises(GridMismatchError, match="different frames of reference"):
        compare_label_images(prediction, read_label_image(phantom["seg"]))


def test_overlapping_binary_seg_keeps_every_segment_whole() -> None:
    path = shared_data("seg_sr", "dcmqi_ct3slice_liver", "seg", "partial_overlaps.dcm")
    image = read_label_image(path)
    volume = hd.seg.segread(path).get_volume(combine_segments=False)
    counts = [int(np.count_nonzero(volume.array[..., s])) for s in range(5)]
    found = [sum(int(np.count_nonzero(layer == n)) for layer in image.layers) for n in range(1, 6)]
    assert found == counts


def test_labelmap_seg_one_slice_from_a_binary_seg_is_one_spacing_away() -> None:
    folder = shared_data("seg_sr", "dcmqi_24x38x3_labelmap", "seg")
    report = compare_label_images(
        read_label_image(folder / "sparse-labelmap-noppv.dcm"),
        read_label_image(folder / "label_seg.dcm"),
    )
    liver = score_of(report, "Liver")
    assert (liver.dice, liver.hd95_mm) == (0.0, pytest.approx(2.5))


# --- the command ----------------------------------------------------------------------------


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_command_writes_json_with_a_row_per_structure_and_means(
    phantom: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "scores.json"
    done = evaluate(
        str(phantom["seg"]), str(phantom["nifti"]),
        "--label-map", str(phantom["names"]), "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"prediction", "reference", "grid", "structures", "mean"}
    assert set(figures["structures"][0]) == {
        "name", "prediction_value", "reference_value", "dice", "iou", "hd95_mm",
        "prediction_ml", "reference_ml", "volume_difference_ml", "volume_difference_percent",
    }  # fmt: skip
    assert (len(figures["structures"]), figures["mean"]["dice"]) == (6, 1.0)


def test_command_prints_json_with_null_for_undefined_scores(tmp_path: Path) -> None:
    prediction, reference = np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)
    reference[1:3, 1:3, 1:3] = 1
    np.save(tmp_path / "p.npy", prediction)
    np.save(tmp_path / "r.npy", reference)
    done = evaluate(str(tmp_path / "p.npy"), str(tmp_path / "r.npy"), "--format", "json")
    (row,) = json.loads(done.stdout)["structures"]
    assert (row["dice"], row["hd95_mm"]) == (0.0, None)


def test_command_table_ends_with_the_mean_row(phantom: dict[str, Path]) -> None:
    done = evaluate(
        str(phantom["seg"]), str(phantom["nifti"]), "--label-map", str(phantom["names"])
    )
    rows = done.stdout.splitlines()
    assert rows[-1].split()[:3] == ["mean", "(6)", "1.0000"]


def test_command_exits_2_with_one_line_on_an_unreadable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    done = evaluate(str(broken), str(broken))
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert done.stderr.startswith(f"evaluate: {broken}: SimpleITK cannot read it")


def test_command_exits_2_on_grids_that_cannot_be_mapped(phantom: dict[str, Path]) -> None:
    done = evaluate(str(phantom["other_seg"]), str(phantom["seg"]))
    assert done.returncode == 2
    assert "different frames of reference" in done.stderr


def test_labels_may_name_a_structure_empty_in_both(totalseg_reference: LabelImage) -> None:
    report = compare_label_images(totalseg_reference, totalseg_reference, labels=["heart"])
    heart = score_of(report, "heart")
    assert (heart.dice, math.isnan(heart.hd95_mm)) == (1.0, True)
