"""SCT's real cervical T2 (manual vertebral levels on the cord) and, derived from those levels,
what TotalSpineSeg's step 1 and step 2 would output: the mr_spine tests' real-label fixture."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from pipelines import ImageVolume
from pipelines.mr_spine.labelling import STEP1, STEP2
from tests.support.geometry import volume_from_image
from tests.support.peers import shared_data

__all__ = ["Spine", "ellipsoid", "sct_cervical_spine", "world_grid"]

SCT_T2 = ("mr", "sct_cervical_spine_nifti", "t2")
ANTERIOR_MM = 9.0  # vertebral bodies and discs lie in front of the cord


@dataclass(frozen=True)
class Spine:
    """SCT's T2 with step-like maps derived from its manual levels, and the truth per part."""

    volume: ImageVolume
    step1: npt.NDArray[np.uint8]
    step2: npt.NDArray[np.uint8]
    discs: dict[int, npt.NDArray[np.bool_]]  # level -> mask
    vertebrae: dict[int, npt.NDArray[np.bool_]]


def world_grid(volume: ImageVolume) -> npt.NDArray[np.float64]:
    indices = np.stack(np.indices(volume.shape), axis=-1)
    return volume.index_to_world(indices)


def ellipsoid(world: npt.NDArray[np.float64], centre: npt.ArrayLike, semi: tuple[float, ...]):
    offset = (world - np.asarray(centre)) / np.asarray(semi)
    return (offset**2).sum(axis=-1) <= 1.0


def derive(volume: ImageVolume, levelled: npt.NDArray[np.integer]) -> Spine:
    """From the cord labelled by vertebral level: a disc at each boundary between levels n-1
    and n (disc n), a vertebral body per level, both in front of the cord; the canal around
    the cord. Step 1 and step 2 class values as TotalSpineSeg's maps."""
    world = world_grid(volume)
    cord = levelled > 0
    levels = sorted(int(v) for v in np.unique(levelled) if v)
    heights = {n: world[levelled == n][:, 2] for n in levels}
    anterior = np.array([0.0, -ANTERIOR_MM, 0.0])
    discs, vertebrae = {}, {}
    for upper, lower in itertools.pairwise(levels):
        plane = (heights[upper].min() + heights[lower].max()) / 2.0
        near = cord & (np.abs(world[..., 2] - plane) <= 1.5)
        discs[lower] = ellipsoid(world, world[near].mean(axis=0) + anterior, (8.0, 7.0, 1.5))
    for n in levels:
        top, bottom = heights[n].max(), heights[n].min()
        if n - 1 in levels:
            top -= 2.5
        if n + 1 in levels:
            bottom += 2.5
        middle = (top + bottom) / 2.0
        near = (levelled == n) & (np.abs(world[..., 2] - middle) <= 1.5)
        centre = world[near].mean(axis=0) + anterior
        vertebrae[n] = ellipsoid(world, centre, (8.0, 7.0, max(1.0, (top - bottom) / 2.0)))
    canal = ndimage.binary_dilation(cord, iterations=2)
    step1 = np.zeros(volume.shape, dtype=np.uint8)
    step2 = np.zeros(volume.shape, dtype=np.uint8)
    for step, classes in ((step1, STEP1), (step2, STEP2)):
        step[canal] = classes.canal
        step[cord] = classes.cord
    for n, mask in vertebrae.items():
        step1[mask] = STEP1.vertebrae
        step2[mask] = STEP2.odd if n % 2 else STEP2.even
    for n, mask in discs.items():
        landmark = {3: "C2-C3", 8: "C7-T1"}.get(n)
        step1[mask] = STEP1.landmarks[landmark] if landmark else STEP1.disc
        step2[mask] = STEP2.landmarks[landmark] if landmark else STEP2.disc
    return Spine(volume, step1, step2, discs, vertebrae)


def sct_cervical_spine() -> Spine:
    volume = volume_from_image(sitk.ReadImage(str(shared_data(*SCT_T2, "t2.nii.gz"))), "MR")
    levelled = sitk.GetArrayFromImage(
        sitk.ReadImage(str(shared_data(*SCT_T2, "t2_seg-manual_labeled.nii.gz")))
    )
    return derive(volume, np.rint(levelled).astype(np.int16))
