"""ct_basic against TotalSegmentator's reference labels on a real CT, in any orientation.

The CT is TotalSegmentator's example (`example_ct_sm.nii.gz`: 30 slices of upper abdomen at
3 mm, the lung bases at the top) with its reference `example_seg.nii.gz`; label names come from
the class map dumped from TotalSegmentator's `map_to_binary.py`. Lung = the union of the lung
lobes; bone = the union of every bone class (vertebrae, sacrum, ribs, sternum, skull and the
limb and girdle bones). Costal cartilage is not bone and is left out of the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

from pipelines import ImageVolume, PipelineError, PipelineResult, SeriesFacts, create_pipeline
from pipelines.ct_basic import LABELS, CtBasicPipeline
from pipelines.ct_basic.lungs import split_left_right
from tests.support.geometry import reoriented, volume_from_image
from tests.support.peers import shared_data
from tests.support.results import dice

NIFTI = ("ct", "totalseg_example_ct_nifti")
CLASS_MAP = ("ct", "totalseg_example_ct_dicom", "reference_seg")
BONE_PREFIXES = (
    "vertebrae_",
    "rib_",
    "humerus_",
    "scapula_",
    "clavicula_",
    "femur_",
    "hip_",
)
BONE_NAMES = {"sacrum", "sternum", "skull"}


@dataclass(frozen=True)
class Reference:
    volume: ImageVolume
    labels: np.ndarray  # TotalSegmentator label values on the volume's grid
    names: dict[int, str]

    def mask(self, predicate: Any) -> np.ndarray:
        values = [value for value, name in self.names.items() if predicate(name)]
        return np.isin(self.labels, values)


@pytest.fixture(scope="module")
def reference() -> Reference:
    image = sitk.ReadImage(str(shared_data(*NIFTI, "example_ct_sm.nii.gz")))
    segmentation = sitk.ReadImage(str(shared_data(*NIFTI, "example_seg.nii.gz")))
    assert segmentation.GetSize() == image.GetSize()
    assert np.allclose(segmentation.GetOrigin(), image.GetOrigin())
    class_map = json.loads(
        shared_data(*CLASS_MAP, "totalsegmentator_class_map_total_and_total_mr.json").read_text()
    )
    names = {int(value): name for value, name in class_map["class_map"]["total"].items()}
    labels = sitk.GetArrayFromImage(segmentation)
    return Reference(volume_from_image(image), labels, names)


@pytest.fixture(scope="module")
def result(reference: Reference) -> PipelineResult:
    return CtBasicPipeline().run(reference.volume, SeriesFacts(modality="CT"))


@pytest.fixture(scope="module")
def label_map(result: PipelineResult) -> np.ndarray:
    return result.label_map


def is_lung(name: str) -> bool:
    return name.startswith("lung_")


def is_bone(name: str) -> bool:
    return name.startswith(BONE_PREFIXES) or name in BONE_NAMES


def test_lungs_match_totalsegmentator(reference: Reference, label_map: np.ndarray) -> None:
    lungs = np.isin(label_map, [LABELS["lung_left"], LABELS["lung_right"]])
    left = dice(label_map == LABELS["lung_left"], reference.mask(lambda n: "lobe_left" in n))
    right = dice(label_map == LABELS["lung_right"], reference.mask(lambda n: "lobe_right" in n))
    score = dice(lungs, reference.mask(is_lung))
    assert score >= 0.90, f"lung Dice {score:.3f} (left {left:.3f}, right {right:.3f})"


def test_bone_matches_totalsegmentator(reference: Reference, label_map: np.ndarray) -> None:
    score = dice(label_map == LABELS["bone"], reference.mask(is_bone))
    assert score >= 0.75, f"bone Dice {score:.3f}"


@pytest.mark.parametrize(
    ("order", "flips"),
    [
        ((0, 1, 2), (2,)),  # columns towards the patient's left instead of right
        ((0, 1, 2), (1, 2)),  # rotated 180 degrees in plane, as a prone patient looks
        ((0, 1, 2), (0,)),  # slices from head to feet
        ((2, 0, 1), ()),  # a sagittal stack: slices along x
        ((1, 2, 0), (0, 2)),  # a coronal stack, flipped
    ],
)
def test_left_lung_is_on_the_patients_left_in_any_orientation(
    reference: Reference, order: tuple[int, int, int], flips: tuple[int, ...]
) -> None:
    volume, labels = reoriented(reference.volume, reference.labels, order, flips)
    moved = Reference(volume, labels, reference.names)
    label_map = CtBasicPipeline().run(volume, SeriesFacts(modality="CT")).label_map
    left = dice(label_map == LABELS["lung_left"], moved.mask(lambda n: "lobe_left" in n))
    right = dice(label_map == LABELS["lung_right"], moved.mask(lambda n: "lobe_right" in n))
    assert min(left, right) >= 0.90, f"left {left:.3f}, right {right:.3f}"


def test_touching_lungs_are_split_at_the_junction() -> None:
    # Two lung-sized ellipsoids that meet across the midline (an anterior junction line).
    shape, spacing = (40, 100, 120), (3.0, 3.0, 3.0)
    axes = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))  # columns towards the right
    volume = ImageVolume(np.zeros(shape, np.int16), (178.5, -148.5, -60.0), spacing, axes)
    z, y, column = np.meshgrid(*(np.arange(n) * 3.0 for n in shape), indexing="ij")
    x, y, z = 178.5 - column, y - 148.5, z - 60.0
    left = ((x - 50) / 52) ** 2 + (y / 70) ** 2 + (z / 55) ** 2 <= 1
    right = ((x + 50) / 52) ** 2 + (y / 70) ** 2 + (z / 55) ** 2 <= 1
    assert (left & right).any()
    found_left, found_right = split_left_right(left | right, volume, midline_x=0.0)
    scores = dice(found_left, left & ~right), dice(found_right, right & ~left)
    assert min(scores) >= 0.99, scores
    assert not (found_left & found_right).any()


def test_ct_without_lungs_has_no_lung_segments() -> None:
    # The first 80 slices of the full example CT: abdomen and pelvis, with bowel gas.
    image = sitk.ReadImage(str(shared_data(*NIFTI, "example_ct.nii.gz")))
    full = volume_from_image(image)
    volume = ImageVolume(full.array[:80], full.origin, full.spacing, full.direction, "CT")
    result = CtBasicPipeline().run(volume, SeriesFacts(modality="CT"))
    present = {result.segment(int(value)).name for value in np.unique(result.label_map) if value}
    assert present == {"body", "bone", "adipose_tissue"}
    assert "no lungs in the field of view" in result.notes


def test_measures_volume_in_ml_per_present_segment(
    reference: Reference, result: PipelineResult
) -> None:
    label_map = result.label_map
    measured = {m.segment_label: m.value for m in result.measurements}
    voxel_ml = float(np.prod(reference.volume.spacing)) / 1000.0
    expected = {
        label: float(np.count_nonzero(label_map == label)) * voxel_ml
        for label in LABELS.values()
        if np.any(label_map == label)
    }
    assert measured == pytest.approx(expected)
    assert {m.unit.value for m in result.measurements} == {"ml"}


def test_refuses_a_non_ct_series(reference: Reference) -> None:
    with pytest.raises(PipelineError, match="needs a CT series"):
        CtBasicPipeline().run(reference.volume, SeriesFacts(modality="MR"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lung_treshold_hu": -400}, "lung_treshold_hu"),
        ({"adipose_min_hu": -20}, "adipose_min_hu must be below adipose_max_hu"),
        ({"bone_seed_hu": 100}, "bone_seed_hu must not be below bone_threshold_hu"),
        ({"smoothing_sigma_mm": -1}, "smoothing_sigma_mm"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_pipeline("ct_basic", options)
