"""A small archive for query tests: 3 patients, 4 studies, 5 series, 8 instances.

Values are chosen so that each matching kind tells apart what it should: an accession number
with SQL LIKE specials (`_`, `%`), a Latin-1 patient name (stored in ISO_IR 100), a study
without a date, times that sit on range bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

__all__ = ["STUDIES", "CatalogSeries", "CatalogStudy", "catalog_datasets", "write_catalog"]

ROOT = "1.2.826.0.1.3680043.8.498.4242"


@dataclass(frozen=True)
class CatalogSeries:
    uid: str
    modality: str
    number: int
    description: str
    instances: int


@dataclass(frozen=True)
class CatalogStudy:
    uid: str
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    date: str
    time: str
    accession: str
    description: str
    series: tuple[CatalogSeries, ...]
    timezone_offset: str = ""
    character_set: str = ""

    @property
    def instance_count(self) -> int:
        return sum(series.instances for series in self.series)

    @property
    def modalities(self) -> list[str]:
        return sorted({series.modality for series in self.series})


A1 = CatalogStudy(
    uid=f"{ROOT}.1",
    patient_id="PAT-A",
    patient_name="Doe^Jane",
    birth_date="19700101",
    sex="F",
    date="20240105",
    time="101500",
    accession="ACC-A1",
    description="CT Chest",
    series=(
        CatalogSeries(f"{ROOT}.1.1", "CT", 1, "Axial 1mm", 3),
        CatalogSeries(f"{ROOT}.1.2", "PT", 2, "WB", 1),
    ),
)
A2 = CatalogStudy(
    uid=f"{ROOT}.2",
    patient_id="PAT-A",
    patient_name="Doe^Jane",
    birth_date="19700101",
    sex="F",
    date="20230620",
    time="083000",
    accession="ACC-A2",
    description="MR Brain",
    series=(CatalogSeries(f"{ROOT}.2.1", "MR", 1, "T1 sag", 2),),
)
B1 = CatalogStudy(
    uid=f"{ROOT}.3",
    patient_id="PAT-B",
    patient_name="Müller^Jürgen",
    birth_date="19851224",
    sex="M",
    date="20241231",
    time="235959",
    accession="ACC_B1%",
    description="Abdomen",
    series=(CatalogSeries(f"{ROOT}.3.1", "CT", 5, "Portal venous", 1),),
    timezone_offset="+0100",
    character_set="ISO_IR 100",
)
C1 = CatalogStudy(
    uid=f"{ROOT}.4",
    patient_id="PAT-C",
    patient_name="Roe^Richard",
    birth_date="",
    sex="",
    date="",
    time="",
    accession="",
    description="",
    series=(CatalogSeries(f"{ROOT}.4.1", "MR", 1, "", 1),),
)
STUDIES = (A1, A2, B1, C1)


def _dataset(study: CatalogStudy, series: CatalogSeries, number: int) -> Dataset:
    sop_class = MRImageStorage if series.modality == "MR" else CTImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(f"{series.uid}.{number}")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if study.character_set:
        ds.SpecificCharacterSet = study.character_set
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate, ds.StudyTime = study.date, study.time
    ds.AccessionNumber = study.accession
    ds.Modality = series.modality
    ds.ReferringPhysicianName = "House^Gregory"
    if study.timezone_offset:
        ds.TimezoneOffsetFromUTC = study.timezone_offset
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.PatientName, ds.PatientID = study.patient_name, study.patient_id
    ds.PatientBirthDate, ds.PatientSex = study.birth_date, study.sex
    ds.SliceThickness = "1.5"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.uid, series.uid
    ds.StudyID = "1"
    ds.SeriesNumber, ds.InstanceNumber = series.number, number
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = 8, 6
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.full((8, 6), number, dtype=np.uint16).tobytes()
    return ds


def catalog_datasets() -> list[Dataset]:
    return [
        _dataset(study, series, number)
        for study in STUDIES
        for series in study.series
        for number in range(1, series.instances + 1)
    ]


def write_catalog(folder: Path) -> list[Path]:
    """The catalog as Part 10 files (for storescu)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in catalog_datasets():
        path = folder / f"{dataset.SOPInstanceUID}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
