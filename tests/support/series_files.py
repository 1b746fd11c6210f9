"""Small synthetic image series (Part 10 files) with chosen geometry, for volume assembly tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

__all__ = [
    "AXIAL",
    "Orientation",
    "Position",
    "positions_along",
    "slice_dataset",
    "slice_pixels",
    "write_series",
]

Position = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]
AXIAL: Orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # HFS axial


def positions_along(
    orientation: Orientation, count: int, *, spacing: float, origin: Position = (0.0, 0.0, 0.0)
) -> list[Position]:
    """`count` positions one `spacing` apart along the slice normal (row x column cosine)."""
    normal = np.cross(orientation[:3], orientation[3:])
    points = np.asarray(origin) + np.outer(np.arange(count) * spacing, normal)
    return [(float(x), float(y), float(z)) for x, y, z in points]


def slice_pixels(index: int, rows: int, columns: int) -> npt.NDArray[np.uint16]:
    """Stored values of slice `index` (in writing order): distinct per slice and per pixel."""
    return (
        ((np.arange(rows * columns) * 7 + index * 101) % 4000)
        .reshape(rows, columns)
        .astype(np.uint16)
    )


def slice_dataset(
    position: Position,
    *,
    index: int = 0,
    orientation: Orientation = AXIAL,
    rows: int = 32,
    columns: int = 32,
    pixel_spacing: tuple[float, float] = (0.5, 0.75),
    modality: str = "CT",
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    frame_of_reference_uid: str = "1.2.826.0.1.3680043.8.498.1",
    series_instance_uid: str = "1.2.826.0.1.3680043.8.498.2",
) -> Dataset:
    """One single-frame image of `slice_pixels(index)`; `rescale` is (slope, intercept)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.SeriesInstanceUID = series_instance_uid
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.Modality, ds.InstanceNumber = modality, index + 1
    ds.PatientName, ds.PatientID = "SYNTHETIC^SERIES", "SYN-1"
    ds.ImagePositionPatient = [f"{value:.6f}" for value in position]
    ds.ImageOrientationPatient = [f"{value:.7f}" for value in orientation]
    ds.PixelSpacing = list(pixel_spacing)
    ds.SliceThickness = 2.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = slice_pixels(index, rows, columns).tobytes()
    return ds


def write_series(
    folder: Path,
    positions: Sequence[Position],
    *,
    edit: Callable[[int, Dataset], None] | None = None,
    **options: object,
) -> list[Path]:
    """One file per position (slice i is `slice_dataset(positions[i], index=i, **options)`);
    `edit(i, dataset)` may change a slice before it is written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, position in enumerate(positions):
        ds = slice_dataset(position, index=index, **options)  # type: ignore[arg-type]
        if edit is not None:
            edit(index, ds)
        path = folder / f"slice{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
