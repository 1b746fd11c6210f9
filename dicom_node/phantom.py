"""A synthetic torso CT with its ground truth, and writing it as a CT Image Storage series.

The torso is drawn in patient millimetres (LPS, PS3.3 C.7.6.2.1.1), supine head first: the top
slice is at the base of the neck and depth grows towards the feet. Anatomy: skin, a
subcutaneous fat layer, muscle, two lungs with vessels (their bases on diaphragm domes, the
right one higher), a trachea splitting into two main bronchi, heart, aorta, spine (vertebral
bodies with discs, arches around the spinal canal, spinous and transverse processes), ten pairs
of ribs sloping down to the front, a sternum, and below the diaphragm liver, a stomach with a
gas bubble and mesenteric fat; a table under the patient, separated by air. Tissues have
realistic HU plus Gaussian noise; edges are sharp (no partial volume), so the ground truth is
exact. Ground-truth labels use the ct_basic label values; bronchial walls and vessels inside a
lung count as lung, the airway is the air in the trachea and bronchi, bowel and stomach gas
is body.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from pipelines import ImageVolume
from pipelines.ct_basic import LABELS

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "LABEL_SUFFIXES",
    "make_torso",
    "write_labels",
    "write_phantom_series",
    "write_series",
]

DEFAULT_SHAPE = (120, 256, 256)  # slices, rows, columns
DEFAULT_SPACING = (2.5, 1.5, 1.5)  # mm between slices, rows, columns
LABEL_SUFFIXES = (".npy", ".nii", ".nii.gz")

Grid = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_BODY, _LUNG_LEFT, _LUNG_RIGHT = LABELS["body"], LABELS["lung_left"], LABELS["lung_right"]
_AIRWAY, _BONE, _FAT = LABELS["airway"], LABELS["bone"], LABELS["adipose_tissue"]

# Hounsfield units of the tissues drawn.
_AIR, _FAT_HU, _SOFT, _MUSCLE, _LIVER, _CSF = -1000.0, -100.0, 40.0, 50.0, 60.0, 20.0
_DISC, _CANCELLOUS, _RIB_MARROW, _CORTICAL, _TABLE = 80.0, 250.0, 200.0, 800.0, 150.0

# Body outline (mm semi-axes, centred on the origin), skin and subcutaneous fat thickness.
_BODY_A, _BODY_B, _SKIN = 170.0, 120.0, 4.0
# Thoracic cavity that holds the lungs, and the ellipse the ribs follow.
_CAVITY_A, _CAVITY_B, _CAVITY_Y = 135.0, 80.0, 3.0
_RIB_A, _RIB_B = 144.0, 89.0
_MEDIASTINUM_HALF_WIDTH = 25.0
_LUNG_APEX, _APEX_DOME = 40.0, 60.0  # depth of the apices, depth over which they widen
_TRACHEA_X, _TRACHEA_Y, _CARINA = 0.0, -20.0, 110.0
_HEART = ((15.0, -25.0, 200.0), (55.0, 45.0, 50.0))  # centre (x, y, depth), semi-axes
_AORTA_X, _AORTA_Y, _AORTA_R, _AORTA_TOP = 22.0, 25.0, 12.0, 80.0
_VESSELS = ((60.0, -20.0), (95.0, 15.0), (55.0, 40.0), (100.0, -35.0))  # (|x|, y) per lung


def make_torso(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    *,
    noise_hu: float = 15.0,
) -> tuple[ImageVolume, npt.NDArray[np.uint8]]:
    """The torso CT (int16 HU, HFS axial, slice 0 at the top) and its ground-truth labels."""
    slices, rows, columns = shape
    if min(shape) < 1 or min(spacing) <= 0:
        raise ValueError(f"shape and spacing must be positive (got {shape}, {spacing})")
    origin = (-(columns - 1) / 2 * spacing[2], -(rows - 1) / 2 * spacing[1], 0.0)
    direction = ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
    x = origin[0] + np.arange(columns, dtype=np.float64)[np.newaxis, :] * spacing[2]
    y = origin[1] + np.arange(rows, dtype=np.float64)[:, np.newaxis] * spacing[1]
    rng = np.random.default_rng(seed)
    hu = np.empty(shape, dtype=np.int16)
    labels = np.empty(shape, dtype=np.uint8)
    for index in range(slices):
        values, truth = _draw_slice(index * spacing[0], x, y)
        if noise_hu > 0:
            values = values + rng.normal(0.0, noise_hu, values.shape)
        hu[index] = np.clip(np.rint(values), -1024, 3071).astype(np.int16)
        labels[index] = truth
    volume = ImageVolume(hu, origin, spacing, direction, "CT")
    return volume, labels


def _draw_slice(depth: float, x: Grid, y: Grid) -> tuple[Grid, npt.NDArray[np.uint8]]:
    """HU and labels of the axial plane `depth` mm below the top slice."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    hu = np.full(shape, _AIR)
    label = np.zeros(shape, dtype=np.uint8)

    def paint(mask: Mask, value: float | Grid, new_label: int) -> None:
        hu[mask] = value if np.isscalar(value) else np.broadcast_to(value, shape)[mask]
        label[mask] = new_label

    paint((np.abs(x) < 210) & (y > 128) & (y < 138), _TABLE, 0)
    body = _ellipse(x, y, 0, 0, _BODY_A, _BODY_B)
    paint(body, _SOFT, _BODY)  # skin
    fat_thickness = 14.0 + 12.0 * np.clip((depth - 260.0) / 80.0, 0.0, 1.0)
    paint(_ellipse(x, y, 0, 0, _BODY_A - _SKIN, _BODY_B - _SKIN), _FAT_HU, _FAT)
    inner = _BODY_A - _SKIN - fat_thickness, _BODY_B - _SKIN - fat_thickness
    paint(_ellipse(x, y, 0, 0, *inner), _MUSCLE, _BODY)
    cavity = _ellipse(x, y, 0, _CAVITY_Y, _CAVITY_A, _CAVITY_B)
    paint(cavity, _SOFT, _BODY)

    below = {side: depth > _diaphragm(x, y, side) for side in (1, -1)}
    abdomen = np.where(x < 0, below[-1], below[1])
    paint(cavity & abdomen & (x < 10), _LIVER, _BODY)
    stomach = _ellipsoid(x, y, depth, (55.0, -20.0, 275.0), (45.0, 40.0, 45.0))
    stomach &= depth > _diaphragm(x, y, 1) + 12.0
    paint(stomach, 30.0, _BODY)
    paint(stomach & (y < -35.0), _AIR, _BODY)  # gas rises to the front in a supine patient
    mesentery = _ellipsoid(x, y, depth, (-10.0, -45.0, 330.0), (60.0, 25.0, 40.0))
    paint(mesentery & (depth > _diaphragm(x, y, -1) + 25.0), _FAT_HU, _FAT)
    paint(_ellipsoid(x, y, depth, *_HEART), _SOFT, _BODY)
    if depth >= _AORTA_TOP:
        paint(_ellipse(x, y, _AORTA_X, _AORTA_Y, _AORTA_R, _AORTA_R), _SOFT, _BODY)
    if 60.0 <= depth <= 150.0:  # anterior mediastinal (thymic) fat
        paint((np.abs(x) <= 15.0) & (y > -80.0) & (y < -55.0), _FAT_HU, _FAT)

    airway_wall, airway_lumen = _airway(x, y, depth)
    for side, side_label in ((1, _LUNG_LEFT), (-1, _LUNG_RIGHT)):
        lung = _lung(x, y, depth, side, margin=0.0)
        gradient = -860.0 + 50.0 * (y + 70.0) / 150.0  # dependent lung is denser
        paint(lung, gradient, side_label)
        paint(lung & airway_wall, _SOFT, side_label)
        core = _lung(x, y, depth, side, margin=4.0)
        for vessel_x, vessel_y in _VESSELS:
            paint(core & _ellipse(x, y, side * vessel_x, vessel_y, 3.0, 3.0), _SOFT, side_label)
    paint(airway_wall & ~_lung_any(x, y, depth), _SOFT, _BODY)
    paint(airway_lumen, _AIR, _AIRWAY)
    _draw_spine(paint, x, y, depth)
    _draw_ribs(paint, x, y, depth)
    if 70.0 <= depth <= 230.0:
        sternum = (np.abs(x) <= 15.0) & (y >= -99.0) & (y <= -87.0)
        paint(sternum, _CORTICAL, _BONE)
        paint((np.abs(x) <= 13.0) & (y >= -97.0) & (y <= -89.0), _CANCELLOUS, _BONE)
    return hu, label


def _ellipse(x: Grid, y: Grid, cx: float, cy: float, a: float, b: float) -> Mask:
    result: Mask = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
    return result


def _ellipsoid(
    x: Grid,
    y: Grid,
    depth: float,
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> Mask:
    scale = 1.0 - ((depth - centre[2]) / radii[2]) ** 2
    if scale <= 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    root = np.sqrt(scale)
    return _ellipse(x, y, centre[0], centre[1], radii[0] * root, radii[1] * root)


def _diaphragm(x: Grid, y: Grid, side: int) -> Grid:
    """Depth of the diaphragm under one lung: domes, the right one higher (the liver)."""
    height = 50.0 if side > 0 else 65.0
    dome: Grid = 260.0 - height * np.exp(-((side * x - 60.0) ** 2 + (y + 10.0) ** 2) / 4050.0)
    return dome


def _lung(x: Grid, y: Grid, depth: float, side: int, margin: float) -> Mask:
    """One lung (`side` +1 left, -1 right), shrunk by `margin` mm on every side."""
    widening = np.clip((depth - _LUNG_APEX - margin) / _APEX_DOME, 0.0, 1.0)
    if widening <= 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    cavity = _ellipse(x, y, 0, _CAVITY_Y, _CAVITY_A - margin, _CAVITY_B - margin)
    apex = ((side * x - 75.0) / 60.0) ** 2 + ((y - _CAVITY_Y) / 80.0) ** 2 <= widening
    lung: Mask = cavity & apex & (side * x >= _MEDIASTINUM_HALF_WIDTH + margin)
    lung &= depth <= _diaphragm(x, y, side) - margin
    (hx, hy, hd), (ha, hb, hc) = _HEART
    pericardium = 6.0 + margin
    radii = (ha + pericardium, hb + pericardium, hc + pericardium)
    lung &= ~_ellipsoid(x, y, depth, (hx, hy, hd), radii)
    if depth >= _AORTA_TOP - 4.0:
        reach = _AORTA_R + 4.0 + margin
        lung &= ~_ellipse(x, y, _AORTA_X, _AORTA_Y, reach, reach)
    return lung


def _lung_any(x: Grid, y: Grid, depth: float) -> Mask:
    return _lung(x, y, depth, 1, 0.0) | _lung(x, y, depth, -1, 0.0)


def _airway(x: Grid, y: Grid, depth: float) -> tuple[Mask, Mask]:
    """(wall, lumen): trachea down to the carina, then the two main bronchi, closed at the ends."""
    carina = np.array([_TRACHEA_X, _TRACHEA_Y, _CARINA])
    tubes = [(np.array([_TRACHEA_X, _TRACHEA_Y, -100.0]), carina, 9.0, 11.5)]
    tubes += [(carina, np.array([-38.0, -10.0, 135.0]), 6.0, 8.0)]  # right: shorter, steeper
    tubes += [(carina, np.array([38.0, -12.0, 140.0]), 6.0, 8.0)]
    shape = np.broadcast_shapes(x.shape, y.shape)
    wall, lumen = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for start, end, lumen_radius, wall_radius in tubes:
        distance = _segment_distance(x, y, depth, start, end)
        wall |= distance <= wall_radius
        lumen |= distance <= lumen_radius
    return wall, lumen


def _segment_distance(
    x: Grid, y: Grid, depth: float, start: npt.NDArray[np.float64], end: npt.NDArray[np.float64]
) -> Grid:
    axis = end - start
    offset = (x - start[0], y - start[1], depth - start[2])
    along = (offset[0] * axis[0] + offset[1] * axis[1] + offset[2] * axis[2]) / axis.dot(axis)
    t = np.clip(along, 0.0, 1.0)
    squared = sum((offset[k] - t * axis[k]) ** 2 for k in range(3))
    distance: Grid = np.sqrt(squared)
    return distance


def _draw_spine(paint: Any, x: Grid, y: Grid, depth: float) -> None:
    if depth % 30.0 < 6.0:  # intervertebral disc
        paint(_ellipse(x, y, 0, 45.0, 17.0, 17.0), _DISC, _BODY)
    else:
        paint(_ellipse(x, y, 0, 45.0, 17.0, 17.0), _CORTICAL, _BONE)
        paint(_ellipse(x, y, 0, 45.0, 15.0, 15.0), _CANCELLOUS, _BONE)
    arch = _ellipse(x, y, 0, 75.0, 13.0, 13.0)
    arch |= (np.abs(x) <= 4.0) & (y >= 85.0) & (y <= 100.0)  # spinous process
    arch |= (np.abs(x) <= 24.0) & (y >= 68.0) & (y <= 78.0)  # transverse processes
    paint(arch, _CORTICAL, _BONE)
    paint(_ellipse(x, y, 0, 75.0, 8.0, 8.0), _CSF, _BODY)  # spinal canal


def _draw_ribs(paint: Any, x: Grid, y: Grid, depth: float) -> None:
    """Ten pairs of ribs on an ellipse around the cavity, 45 mm lower at the front."""
    u, v = x / _RIB_A, (y - _CAVITY_Y) / _RIB_B
    angle = np.abs(np.arctan2(u, v))  # 0 at the back, pi at the front
    radial = (np.sqrt(u**2 + v**2) - 1.0) * np.hypot(_RIB_A * np.sin(angle), _RIB_B * np.cos(angle))
    along = (angle >= 0.14) & (angle <= 0.78 * np.pi)
    slope = 45.0 * (1.0 - np.cos(angle)) / 2.0
    for level in range(10):
        height = depth - (50.0 + 20.0 * level) - slope
        paint(along & ((radial / 4.0) ** 2 + (height / 6.0) ** 2 <= 1.0), _CORTICAL, _BONE)
        marrow = (radial / 2.5) ** 2 + (height / 4.5) ** 2 <= 1.0
        paint(along & marrow, _RIB_MARROW, _BONE)


def write_phantom_series(
    folder: Path,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    **attributes: Any,
) -> list[Path]:
    """Draw the torso and write it as a CT series in `folder` (see `write_series`)."""
    volume, _ = make_torso(shape, spacing, seed)
    return write_series(folder, volume, **attributes)


def write_series(
    folder: Path,
    volume: ImageVolume,
    *,
    patient_name: str = "PHANTOM^TORSO",
    patient_id: str = "PHANTOM-TORSO",
    series_description: str = "dicom-node torso phantom",
    body_part: str = "CHEST",
) -> list[Path]:
    """Write a volume as one single-frame instance per slice: CT Image Storage (PS3.3 A.3)
    for a CT volume, MR Image Storage (A.4) for an MR one, in any orientation.

    Explicit VR Little Endian, 12 of 16 bits unsigned (CT: RescaleIntercept -1024; MR: the
    values as they are, clipped to 0..4095); fresh Study, Series, Frame of Reference and SOP
    Instance UIDs. Slice k lies at ImagePositionPatient ``volume.index_to_world((k, 0, 0))``;
    rows run along ``direction[2]``, columns along ``direction[1]``.
    """
    if volume.modality not in ("CT", "MR"):
        raise ValueError(f"CT or MR volumes are written (not {volume.modality!r})")
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now()
    common = series_dataset(volume, patient_name, patient_id, series_description, now)
    common.BodyPartExamined = body_part
    offset = 1024 if volume.modality == "CT" else 0
    stored = np.asarray(volume.array, dtype=np.int32) + offset
    stored = np.clip(stored, 0, 4095).astype(np.uint16)
    normal = np.asarray(volume.direction[0])
    prefix = volume.modality
    paths = []
    for index in range(volume.shape[0]):
        dataset = copy.deepcopy(common)
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = common.SOPClassUID
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.InstanceNumber = index + 1
        position = volume.index_to_world((index, 0, 0))
        dataset.ImagePositionPatient = [decimal_string(value) for value in position]
        dataset.SliceLocation = decimal_string(float(normal @ position))
        dataset.PixelData = stored[index].tobytes()
        path = folder / f"{prefix}{index + 1:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_labels(path: Path, labels: npt.NDArray[np.uint8], volume: ImageVolume) -> None:
    """Save a label map on `volume`'s grid: ``.npy`` (array only) or NIfTI (``.nii``,
    ``.nii.gz``, with the grid's geometry; SimpleITK converts LPS to the file's RAS)."""
    if labels.shape != volume.shape:
        raise ValueError(f"labels {labels.shape} do not match the grid {volume.shape}")
    name = path.name.lower()
    if name.endswith(".npy"):
        np.save(path, labels)
    elif name.endswith(LABEL_SUFFIXES):
        image: Any = sitk.GetImageFromArray(labels)  # numpy [slice, row, column] = ITK (z, y, x)
        image.SetSpacing([volume.spacing[2], volume.spacing[1], volume.spacing[0]])
        image.SetOrigin(list(volume.origin))
        axes = np.column_stack([volume.direction[2], volume.direction[1], volume.direction[0]])
        image.SetDirection(axes.ravel().tolist())
        sitk.WriteImage(image, str(path), useCompression=True)
    else:
        raise ValueError(f"labels end in {', '.join(LABEL_SUFFIXES)} (not {path.name})")


def series_dataset(
    volume: ImageVolume,
    patient_name: str,
    patient_id: str,
    series_description: str,
    now: datetime.datetime,
) -> Dataset:
    """The attributes every slice of a phantom series shares: patient, study, series, frame,
    equipment, pixels (CT, or a 2D spin-echo MR)."""
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    mr = volume.modality == "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M" if mr else "AXIAL"]
    ds.SOPClassUID = MRImageStorage if mr else CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AccessionNumber = ""
    ds.Modality = volume.modality
    ds.Manufacturer = "dicom-node"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Phantom"
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = "torso phantom"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = decimal_string(volume.spacing[0])
    if mr:  # MR Image module (PS3.3 C.8.3.1): a 2D spin echo
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 3000, 100, 16
        ds.MagneticFieldStrength = 1.5
        ds.ImagedNucleus = "1H"
    else:
        ds.KVP = 120
        ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [
        decimal_string(value) for value in (*volume.direction[2], *volume.direction[1])
    ]
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.PixelSpacing = [decimal_string(volume.spacing[1]), decimal_string(volume.spacing[2])]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if mr:
        ds.WindowCenter, ds.WindowWidth = 600, 1200
    else:
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    return ds


def decimal_string(value: float) -> str:
    """A Decimal String value (PS3.5 6.2: at most 16 characters)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
