"""The DICOM JSON Model (PS3.18 F.2), used by QIDO-RS responses and WADO-RS /metadata.

pydicom's `Dataset.to_json_dict` does the encoding: tags as 8 upper-case hex digits, `vr`,
`Value` (absent when the value is empty, F.2.5), PN as component groups (F.2.2), IS/DS as
numbers, binary values as `InlineBinary` (base64) or, above the threshold and when a
`bulk_data_uri` is given, as `BulkDataURI` (F.2.6/F.2.7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

__all__ = ["BULK_DATA_THRESHOLD", "dataset_to_json"]

# Binary values longer than this many bytes are given by BulkDataURI when a builder is given.
BULK_DATA_THRESHOLD = 1024


def dataset_to_json(
    dataset: Dataset,
    bulk_data_uri: Callable[[BaseTag], str] | None = None,
    *,
    bulk_data_threshold: int = BULK_DATA_THRESHOLD,
) -> dict[str, Any]:
    """`dataset` as a DICOM JSON object (PS3.18 F.2). Binary values (OB, OW, OF, OD, OL, OV,
    UN) longer than `bulk_data_threshold` bytes become `{"BulkDataURI": bulk_data_uri(tag)}`
    when `bulk_data_uri` is given, else `InlineBinary`. An element whose value does not
    convert is left out rather than failing the whole object (pydicom logs it)."""
    handler: Callable[[DataElement], str] | None = None
    if bulk_data_uri is not None:
        uri_for = bulk_data_uri

        def handler(element: DataElement) -> str:
            return uri_for(element.tag)

    return dataset.to_json_dict(
        bulk_data_threshold=bulk_data_threshold,
        bulk_data_element_handler=handler,
        suppress_invalid_tags=True,
    )
