"""dicom-node: a DICOM-native PACS node and DICOMweb service that runs AI segmentation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dicom-node")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
