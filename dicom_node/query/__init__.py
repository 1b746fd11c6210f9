"""Finding what is stored: query matching (C-FIND, QIDO-RS) and retrieve selection
(C-MOVE, C-GET, WADO-RS)."""

from dicom_node.query.locate import InstanceLocation, locate_instances

__all__ = ["InstanceLocation", "locate_instances"]
