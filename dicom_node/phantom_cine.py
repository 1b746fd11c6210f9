"""A synthetic short-axis cardiac cine MR: a beating left ventricle with known volumes.

The LV is a prolate half-ellipsoid cavity (the base plane cut, the apex pointing along the
long axis) inside a myocardial shell whose volume stays the same over the cycle (muscle does
not compress): at each phase the shell's thickness is solved for that volume. The cavity
contracts from end diastole (phase 0) to end systole (about a third of the cycle) and refills
(cosine-shaped). A right-ventricular blood pool lies beside the septum, the body is an
ellipse of soft tissue, air outside; SSFP-like contrast (bright blood, dark myocardium) with
Gaussian noise.

The stack is double-oblique, as a scanner plans a short-axis cine: slices perpendicular to the
long axis, 8 mm thick, 10 mm apart (2 mm gaps), from the base toward the apex. Each seed
varies the size, ejection fraction, wall thickness, orientation, position, heart rate and the
phase of end systole. Trigger times are phase k x RR / phases, plus up to 1.5 ms of per-slice
jitter (each slice is acquired in its own breath hold).

Truth: per phase a label map (1 LV blood pool, 2 LV myocardium) on the stack's grid, and the
volumes those masks hold (voxel count x pixel area x slice spacing, what a perfect
segmentation measures by the node's method).
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from dicom_node.phantom import decimal_string, series_dataset
from pipelines.cine import CineVolume
from pipelines.volume import ImageVolume

__all__ = [
    "BLOOD_POOL",
    "MYOCARDIUM",
    "CinePhantom",
    "make_cine",
    "write_cine",
]

BLOOD_POOL, MYOCARDIUM = 1, 2
_BLOOD, _MUSCLE, _TISSUE = 900.0, 250.0, 450.0
MYOCARDIAL_DENSITY = 1.05  # g/ml


@dataclass(frozen=True, eq=False)
class CinePhantom:
    cine: CineVolume
    truths: tuple[npt.NDArray[np.uint8], ...]  # per phase, on the stack's grid
    slice_trigger_times_ms: npt.NDArray[np.float64]  # (phases, slices): what each frame says
    rr_ms: float

    @property
    def volumes_ml(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Blood pool and myocardium volume per phase, from the truth masks."""
        voxel_ml = self.cine.grid.voxel_volume_mm3 / 1000.0
        blood = np.array([np.count_nonzero(t == BLOOD_POOL) * voxel_ml for t in self.truths])
        muscle = np.array([np.count_nonzero(t == MYOCARDIUM) * voxel_ml for t in self.truths])
        return blood, muscle

    @property
    def truth_function(self) -> dict[str, float]:
        """EDV, ESV, SV (ml), EF (%), LV mass (g), ED and ES phase indices of the truth."""
        blood, muscle = self.volumes_ml
        ed, es = int(np.argmax(blood)), int(np.argmin(blood))
        edv, esv = float(blood[ed]), float(blood[es])
        return {
            "edv_ml": edv,
            "esv_ml": esv,
            "sv_ml": edv - esv,
            "ef_percent": 100.0 * (edv - esv) / edv,
            "mass_g": float(muscle[ed]) * MYOCARDIAL_DENSITY,
            "ed_phase": ed,
            "es_phase": es,
        }


def _unit(vector: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(vector, dtype=float)
    unit: npt.NDArray[np.float64] = array / np.linalg.norm(array)
    return unit


def _vector(array: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    return float(array[0]), float(array[1]), float(array[2])


def _contraction(phase: float, systole_end: float) -> float:
    """0 at end diastole, 1 at end systole, back to 0 by 0.75 of the cycle (cosine-shaped)."""
    if phase <= systole_end:
        return float((1.0 - np.cos(np.pi * phase / systole_end)) / 2.0)
    relax = 0.75 - systole_end
    if phase <= 0.75:
        return float((1.0 + np.cos(np.pi * (phase - systole_end) / relax)) / 2.0)
    return 0.0


def _shell_thickness(a: float, c: float, myocardium_ml: float) -> float:
    """Thickness w with half-ellipsoid volume (a+w, a+w, c+w) minus (a, a, c) = the muscle."""
    target = myocardium_ml * 1000.0
    inner = 2.0 / 3.0 * np.pi * a * a * c
    low, high = 0.0, 40.0
    for _ in range(60):
        middle = (low + high) / 2.0
        outer = 2.0 / 3.0 * np.pi * (a + middle) ** 2 * (c + middle)
        low, high = (middle, high) if outer - inner < target else (low, middle)
    return (low + high) / 2.0


def make_cine(
    seed: int = 0,
    *,
    phases: int = 20,
    slices: int = 10,
    matrix: int = 96,
    pixel_mm: float = 2.5,
    slice_spacing_mm: float = 10.0,
    noise: float = 25.0,
) -> CinePhantom:
    rng = np.random.default_rng(seed)
    tilt = rng.normal(0.0, 0.12, 3)
    apex = _unit(np.array([0.6, -0.55, -0.58]) + tilt)  # the long axis, base to apex
    row = _unit(np.cross(apex, (0.0, 0.0, 1.0)))
    column = np.cross(apex, row)  # row x column = apex: slices go from the base to the apex
    radius_ed = 27.0 * rng.uniform(0.9, 1.1)
    length_ed = 85.0 * rng.uniform(0.92, 1.08)
    radius_es, length_es = radius_ed * rng.uniform(0.68, 0.78), length_ed * rng.uniform(0.85, 0.92)
    wall_ed = 9.0 * rng.uniform(0.85, 1.15)
    muscle_ml = (
        2.0 / 3.0 * np.pi * ((radius_ed + wall_ed) ** 2 * (length_ed + wall_ed)
                              - radius_ed**2 * length_ed) / 1000.0
    )  # fmt: skip
    systole_end = rng.uniform(0.3, 0.4)
    rr = float(rng.uniform(800.0, 1100.0))
    centre = rng.normal(0.0, 4.0, 3)  # the base plane's centre, patient mm
    base_offset = 2.0  # the first slice lies this far below the base plane

    half = (matrix - 1) / 2.0 * pixel_mm
    origin = centre + apex * base_offset - row * half - column * half
    direction = (_vector(apex), _vector(column), _vector(row))
    spacing = (slice_spacing_mm, pixel_mm, pixel_mm)
    indices = np.moveaxis(np.indices((slices, matrix, matrix)), 0, -1).astype(float)
    grid = ImageVolume(
        np.zeros((slices, matrix, matrix), np.float32),
        (float(origin[0]), float(origin[1]), float(origin[2])),
        spacing,
        direction,
        "MR",
    )
    world = grid.index_to_world(indices) - centre
    u, v, w = world @ row, world @ column, world @ apex  # w: depth below the base plane
    body = (u / 120.0) ** 2 + ((v + 10.0) / 95.0) ** 2 <= 1.0

    volumes, truths = [], []
    triggers = np.zeros((phases, slices))
    jitter = rng.uniform(-1.5, 1.5, (phases, slices))
    for k in range(phases):
        squeeze = _contraction(k / phases, systole_end)
        a = radius_ed + (radius_es - radius_ed) * squeeze
        c = length_ed + (length_es - length_ed) * squeeze
        wall = _shell_thickness(a, c, muscle_ml)
        below = w >= 0.0
        cavity = below & ((u / a) ** 2 + (v / a) ** 2 + (w / c) ** 2 <= 1.0)
        outer = below & (
            (u / (a + wall)) ** 2 + (v / (a + wall)) ** 2 + (w / (c + wall)) ** 2 <= 1.0
        )
        muscle = outer & ~cavity
        rv_u = -(a + wall + 14.0)
        right = (
            below
            & ~outer
            & (((u - rv_u) / 18.0) ** 2 + (v / (a + 12.0)) ** 2 + (w / (0.8 * c)) ** 2 <= 1.0)
        )
        signal = np.where(body, _TISSUE, 0.0)
        signal[right | cavity] = _BLOOD
        signal[muscle] = _MUSCLE
        signal = signal + rng.normal(0.0, noise, signal.shape)
        truth = np.zeros(signal.shape, dtype=np.uint8)
        truth[cavity], truth[muscle] = BLOOD_POOL, MYOCARDIUM
        volumes.append(grid.with_array(np.clip(np.rint(signal), 0, 4095).astype(np.int16)))
        truths.append(truth)
        triggers[k] = np.clip(k * rr / phases + jitter[k], 0.0, None)
    cine = CineVolume(tuple(volumes), tuple(float(t) for t in triggers.mean(axis=1)))
    return CinePhantom(cine, tuple(truths), triggers, rr)


def write_cine(
    folder: Path,
    phantom: CinePhantom,
    *,
    enhanced: bool = False,
    series_per_slice: bool = False,
    phases: Sequence[int] | None = None,
) -> list[Path]:
    """Write the cine as MR Image Storage files, one per slice and phase (`series_per_slice`:
    each slice location its own series, as some scanners send a cine), or as one Enhanced MR
    Image Storage file holding every frame. `phases` writes only those (a missing phase)."""
    folder.mkdir(parents=True, exist_ok=True)
    cine = phantom.cine
    chosen = list(range(len(cine.phases))) if phases is None else list(phases)
    common = _common(cine.grid, phantom.rr_ms, len(cine.phases))
    if enhanced:
        return [_write_enhanced(folder, phantom, chosen, common)]
    series = {k: generate_uid() for k in range(cine.grid.shape[0])}
    paths = []
    number = 0
    for slice_index in range(cine.grid.shape[0]):
        for phase in chosen:
            number += 1
            dataset = copy.deepcopy(common)
            dataset.SOPClassUID = MRImageStorage
            if series_per_slice:
                dataset.SeriesInstanceUID = series[slice_index]
                dataset.SeriesNumber = 10 + slice_index
            dataset.SOPInstanceUID = generate_uid()
            dataset.InstanceNumber = number
            position = cine.grid.index_to_world((slice_index, 0, 0))
            dataset.ImagePositionPatient = [decimal_string(value) for value in position]
            dataset.SliceLocation = decimal_string(
                float(np.asarray(cine.grid.direction[0]) @ position)
            )
            dataset.TriggerTime = decimal_string(
                float(phantom.slice_trigger_times_ms[phase, slice_index])
            )
            pixels = np.asarray(cine.phases[phase].array[slice_index], dtype=np.uint16)
            dataset.PixelData = pixels.tobytes()
            path = folder / f"MR{number:04d}.dcm"
            _save(dataset, path)
            paths.append(path)
    return paths


def _common(grid: ImageVolume, rr_ms: float, phases: int) -> Dataset:
    """The phantom series' attributes (`dicom_node.phantom.series_dataset`) as a cine: a
    balanced SSFP (gradient echo) sequence, 8 mm slices, the cardiac timing of the series."""
    ds = series_dataset(
        grid, "PHANTOM^HEART", "PHANTOM-HEART", "cine short axis", datetime.datetime.now()
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.ManufacturerModelName = "cine phantom"
    ds.StudyDescription = "Cardiac phantom"
    ds.BodyPartExamined = "HEART"
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SS", ""
    ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 3.0, 1.5, 1
    ds.SliceThickness = decimal_string(8.0)
    ds.SpacingBetweenSlices = decimal_string(grid.spacing[0])
    ds.NominalInterval = round(rr_ms)  # IS
    ds.HeartRate = round(60000.0 / rr_ms)  # IS
    ds.CardiacNumberOfImages = phases
    ds.WindowCenter, ds.WindowWidth = 500, 1000
    return ds


def _write_enhanced(folder: Path, phantom: CinePhantom, phases: list[int], common: Dataset) -> Path:
    """One Enhanced MR Image (PS3.3 A.36.2) with every frame: per frame its plane position,
    frame content (stack, in-stack position, temporal position) and cardiac trigger delay."""
    cine = phantom.cine
    grid = cine.grid
    ds = copy.deepcopy(common)
    for keyword in (
        "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
        "ScanningSequence", "SequenceVariant", "ScanOptions", "RepetitionTime", "EchoTime",
        "EchoTrainLength", "NominalInterval", "HeartRate", "CardiacNumberOfImages",
        "WindowCenter", "WindowWidth",
    ):  # fmt: skip
        delattr(ds, keyword)
    ds.SOPClassUID = EnhancedMRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = 1.5
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.AcquisitionContrast = "MIXED"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.DimensionOrganizationSequence = DicomSequence([Dataset()])
    organization = generate_uid()
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = organization
    dimensions = []
    for pointer, group in ((0x00209057, 0x00209111), (0x00209128, 0x00209111)):
        item = Dataset()
        item.DimensionOrganizationUID = organization
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = group
        dimensions.append(item)
    ds.DimensionIndexSequence = DicomSequence(dimensions)

    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [
        decimal_string(v) for v in (*grid.direction[2], *grid.direction[1])
    ]
    measures = Dataset()
    measures.PixelSpacing = [decimal_string(grid.spacing[1]), decimal_string(grid.spacing[2])]
    measures.SliceThickness = decimal_string(8.0)
    measures.SpacingBetweenSlices = decimal_string(grid.spacing[0])
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame, pixels = [], []
    for slice_index in range(grid.shape[0]):
        position = grid.index_to_world((slice_index, 0, 0))
        for temporal, phase in enumerate(phases, start=1):
            frame = Dataset()
            plane = Dataset()
            plane.ImagePositionPatient = [decimal_string(value) for value in position]
            content = Dataset()
            content.StackID = "1"
            content.InStackPositionNumber = slice_index + 1
            content.TemporalPositionIndex = temporal
            content.DimensionIndexValues = [slice_index + 1, temporal]
            cardiac = Dataset()
            cardiac.NominalCardiacTriggerDelayTime = float(  # FD
                phantom.slice_trigger_times_ms[phase, slice_index]
            )
            cardiac.RRIntervalTimeNominal = phantom.rr_ms  # FD
            frame.PlanePositionSequence = DicomSequence([plane])
            frame.FrameContentSequence = DicomSequence([content])
            frame.CardiacSynchronizationSequence = DicomSequence([cardiac])
            per_frame.append(frame)
            pixels.append(np.asarray(cine.phases[phase].array[slice_index], dtype=np.uint16))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(per_frame)
    ds.PixelData = np.stack(pixels).tobytes()
    path = folder / "MR_enhanced.dcm"
    _save(ds, path)
    return path


def _save(dataset: Dataset, path: Path) -> None:
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
