"""Real-size synthetic CT series (512x512, 16-bit) for load, crash and benchmark runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_series(
    folder: Path,
    count: int,
    *,
    size: int = 512,
    patient_name: str = "PHANTOM^CT",
    patient_id: str = "PHANTOM-1",
) -> list[Path]:
    """Write `count` CT slices (an ellipse of water in air, 1 mm slices) as Part 10 files."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    y, x = np.mgrid[:size, :size]
    body = ((x - size / 2) / (size * 0.4)) ** 2 + ((y - size / 2) / (size * 0.3)) ** 2 <= 1
    paths = []
    for number in range(count):
        pixels = np.where(body, 1024 + (number % 50), 0).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260101", "120000", "ACC1"
        ds.StudyID, ds.ReferringPhysicianName = "1", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, number + 1
        ds.SeriesDescription, ds.BodyPartExamined = "phantom", "ABDOMEN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition, ds.PositionReferenceIndicator = "HFS", ""
        ds.Manufacturer, ds.KVP, ds.AcquisitionNumber = "dicom-node phantom", 120, 1
        ds.ImagePositionPatient = [-250.0, -250.0, float(number)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.9765625, 0.9765625], 1.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = pixels.tobytes()
        path = folder / f"ct{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
