"""DIMSE services (pynetdicom): the SCP and its named statuses."""

from dicom_node.dimse.scp import DimseServer
from dicom_node.dimse.status import Status

__all__ = ["DimseServer", "Status"]
