"""Reorientation to model axis codes (pipelines.runtime.geometry) and grid resampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from pipelines.runtime.geometry import Reorientation, axcodes_of, check_axcodes, reorient
from pipelines.runtime.resample import (
    resample_image,
    resample_labels,
    resample_scalar,
    target_shape,
)
from pipelines.volume import ImageVolume

# letter -> unit vector in DICOM LPS patient coordinates
UNIT = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}
ALL_CODES = [
    "".join(letters)
    for axes in itertools.permutations((("L", "R"), ("P", "A"), ("S", "I")))
    for letters in itertools.product(*axes)
]


def volume_with_codes(codes: str, direction_rotation: np.ndarray | None = None) -> ImageVolume:
    """A 3x4x5 volume whose x, y, z (column, row, slice) axes grow toward ``codes``."""
    direction = np.array([UNIT[codes[2]], UNIT[codes[1]], UNIT[codes[0]]])  # slice, row, column
    if direction_rotation is not None:
        direction = direction @ direction_rotation.T
    rows = [tuple(float(v) for v in row) for row in direction]
    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    return ImageVolume(
        array,
        (10.0, -20.0, 30.0),
        (2.5, 0.8, 0.7),
        (
            (rows[0][0], rows[0][1], rows[0][2]),
            (rows[1][0], rows[1][1], rows[1][2]),
            (rows[2][0], rows[2][1], rows[2][2]),
        ),
    )


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis``."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    angle = np.radians(degrees)
    matrix: np.ndarray = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    return matrix


def all_positions(volume: ImageVolume) -> np.ndarray:
    """LPS position of every voxel, in array order, shape (*shape, 3)."""
    index = np.moveaxis(np.indices(volume.shape), 0, -1)
    return volume.index_to_world(index)


def test_there_are_48_axis_codes() -> None:
    assert len(set(ALL_CODES)) == 48


@pytest.mark.parametrize("source", ALL_CODES)
def test_axcodes_of_reads_the_direction(source: str) -> None:
    assert axcodes_of(volume_with_codes(source)) == source


@pytest.mark.parametrize("source", ALL_CODES)
def test_reorient_gives_every_requested_code(source: str) -> None:
    volume = volume_with_codes(source)
    got = [axcodes_of(reorient(volume, target)[0]) for target in ALL_CODES]
    assert got == ALL_CODES


@pytest.mark.parametrize("source", ALL_CODES)
def test_revert_restores_the_array_for_every_target(source: str) -> None:
    volume = volume_with_codes(source)
    for target in ALL_CODES:
        reoriented, transform = reorient(volume, target)
        np.testing.assert_array_equal(transform.revert(reoriented.array), volume.array)


@pytest.mark.parametrize("source", ALL_CODES)
def test_every_voxel_keeps_its_patient_position(source: str) -> None:
    volume = volume_with_codes(source)
    before = all_positions(volume)
    for target in ALL_CODES:
        reoriented, transform = reorient(volume, target)
        # the voxel at each reoriented index sits where the same value sat before
        after = transform.revert(all_positions(reoriented).transpose(3, 0, 1, 2))
        np.testing.assert_allclose(after.transpose(1, 2, 3, 0), before, atol=1e-9)


@pytest.mark.parametrize("source", ["LPS", "RAS", "SAL", "IRP"])
def test_oblique_stack_goes_to_the_nearest_axes(source: str) -> None:
    volume = volume_with_codes(source, rotation((1.0, 2.0, 0.5), 25.0))
    reoriented, _ = reorient(volume, "RAS")
    assert axcodes_of(reoriented) == "RAS"


@pytest.mark.parametrize("source", ["LPS", "RAS", "SAL", "IRP"])
def test_oblique_round_trip_is_exact(source: str) -> None:
    volume = volume_with_codes(source, rotation((1.0, 2.0, 0.5), 25.0))
    before = all_positions(volume)
    reoriented, transform = reorient(volume, "RAS")
    np.testing.assert_array_equal(transform.revert(reoriented.array), volume.array)
    after = transform.revert(all_positions(reoriented).transpose(3, 0, 1, 2))
    np.testing.assert_allclose(after.transpose(1, 2, 3, 0), before, atol=1e-9)


def test_reorientation_carries_leading_channel_axes_on_torch_tensors() -> None:
    transform = Reorientation((2, 0, 1), (True, False, True))
    array = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    on_torch = transform.apply(torch.from_numpy(array)).numpy()
    np.testing.assert_array_equal(on_torch, transform.apply(array))


def test_identity_reorientation_returns_the_same_volume() -> None:
    volume = volume_with_codes("LPS")
    assert reorient(volume, "lps")[0] is volume


@pytest.mark.parametrize("codes", ["LPR", "XYZ", "LP", "LPSA"])
def test_bad_axis_codes_are_rejected(codes: str) -> None:
    with pytest.raises(ValueError, match="orientation"):
        check_axcodes(codes)


# --- resampling -------------------------------------------------------------------------------

SHAPE_PAIRS = [
    ((20, 30, 40), (37, 55, 71)),
    ((40, 60, 64), (21, 31, 33)),
    ((12, 20, 20), (24, 40, 40)),
    ((17, 23, 29), (51, 50, 61)),
    ((30, 30, 30), (15, 55, 30)),
]


def test_target_shape_rounds_like_nnunet() -> None:
    assert target_shape((300, 512, 512), (1.0, 0.7, 0.7), (1.5, 1.5, 1.5)) == (200, 239, 239)


def test_labels_at_the_same_shape_come_back_unchanged() -> None:
    labels = torch.randint(0, 117, (5, 6, 7), dtype=torch.uint8)
    assert torch.equal(resample_labels(labels, (5, 6, 7)), labels)


def half_way_ties(size: int, new_size: int) -> np.ndarray:
    """Output positions whose centre lies exactly half-way between two input voxels."""
    i = np.arange(new_size)
    tie: np.ndarray = ((2 * i + 1) * size) % (2 * new_size) == 0
    return tie


@pytest.mark.parametrize(("source", "target"), SHAPE_PAIRS)
def test_nearest_labels_match_scipy_zoom_order_0(
    source: tuple[int, int, int], target: tuple[int, int, int]
) -> None:
    """Tolerance: none, except at exact half-way ties (both neighbours equally near), which
    scipy breaks downward through float rounding and we break upward in integer arithmetic."""
    labels = np.random.default_rng(7).integers(0, 117, source).astype(np.uint8)
    ours = resample_labels(torch.from_numpy(labels), target).numpy()
    zoom = [t / s for t, s in zip(target, source, strict=True)]
    reference = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
    tie = np.zeros(target, dtype=bool)
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = target[axis]
        tie |= half_way_ties(source[axis], target[axis]).reshape(shape)
    np.testing.assert_array_equal(ours[~tie], reference[~tie])


def test_nearest_labels_keep_an_int16_dtype() -> None:
    labels = torch.full((4, 4, 4), 300, dtype=torch.int16)
    assert resample_labels(labels, (8, 3, 5)).dtype == torch.int16


def test_nearest_labels_in_slabs_equal_one_gather() -> None:
    labels = torch.randint(0, 117, (7, 9, 11), dtype=torch.uint8)
    z, y, x = (
        torch.tensor(np.floor((np.arange(m) + 0.5) * n / m), dtype=torch.int64)
        for n, m in ((7, 40), (9, 13), (11, 6))
    )
    expected = labels[z[:, None, None], y[None, :, None], x[None, None, :]]
    assert torch.equal(resample_labels(labels, (40, 13, 6)), expected)


def test_image_resampling_keeps_the_grid_extent() -> None:
    """Output centre i of m samples input coordinate (i + 0.5) * n / m - 0.5 (grid extents
    coincide: align_corners=False)."""
    n, m = 20, 33
    ramp = torch.arange(n, dtype=torch.float32).reshape(1, 1, 1, n).expand(1, 2, 2, n)
    out = resample_image(ramp.contiguous(), (2, 2, m))[0, 0, 0].numpy()
    expected = np.clip((np.arange(m) + 0.5) * n / m - 0.5, 0, n - 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_scalar_maps_stay_in_their_range() -> None:
    values = torch.rand((6, 7, 8))
    out = resample_scalar(values, (13, 5, 17))
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0
