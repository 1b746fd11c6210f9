"""The hand-encoded File Meta Information equals pydicom's encoding of the same elements."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from dicom_node.storage.part10 import PREAMBLE, dataset_offset, encode_file_meta


@pytest.mark.parametrize("source_ae", ["", "CT1", "ODD_LENGTH_AE"])
@pytest.mark.parametrize("sop_instance_uid", ["1.2.3.4", "1.2.3.45"])
def test_meta_matches_pydicom(source_ae: str, sop_instance_uid: str) -> None:
    ours = encode_file_meta(
        media_storage_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        media_storage_sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid="1.2.840.10008.1.2.4.90",
        implementation_class_uid="2.25.1234",
        implementation_version_name="DICOMNODE_0.1.0",
        source_application_entity_title=source_ae,
    )
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.90")
    meta.ImplementationClassUID = UID("2.25.1234")
    meta.ImplementationVersionName = "DICOMNODE_0.1.0"
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    buffer = io.BytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)  # type: ignore[arg-type]
    assert ours == buffer.getvalue()


def test_dataset_offset_finds_the_dataset() -> None:
    meta = encode_file_meta(
        media_storage_sop_class_uid="1.2.3",
        media_storage_sop_instance_uid="1.2.3.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        implementation_class_uid="2.25.1",
        implementation_version_name="X",
    )
    dataset = b"\x08\x00\x16\x00UI\x06\x001.2.3\x00"
    part10 = PREAMBLE + meta + dataset
    assert part10[dataset_offset(part10) :] == dataset
    parsed = pydicom.dcmread(io.BytesIO(part10))
    assert parsed.SOPClassUID == "1.2.3"
    assert parsed.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
