"""DIMSE services: the SCP (own association loop on pynetdicom codecs) and its named statuses."""

from dicom_node.dimse.scp import DimseServer
from dicom_node.dimse.status import Status

__all__ = ["DimseServer", "Status"]
