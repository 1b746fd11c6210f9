"""Storage: the one durable path by which instances enter the node."""

from dicom_node.storage.files import StorageArea
from dicom_node.storage.inspection import InstanceHeader, read_header
from dicom_node.storage.instances import Disposition, InstanceStore, Receipt, StoreOutcome

__all__ = [
    "Disposition",
    "InstanceHeader",
    "InstanceStore",
    "Receipt",
    "StorageArea",
    "StoreOutcome",
    "read_header",
]
