"""What the writer is told besides the result: the algorithm that made it and series settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import PackageNotFoundError, version

from pipelines.result import Code

__all__ = [
    "ARTIFICIAL_INTELLIGENCE",
    "AlgorithmInfo",
    "SegmentationEncoding",
    "WriterOptions",
]

# PS3.16 CID 7162 "Surface Processing Algorithm Families" (used for SEG and TID 4019).
ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")


def _package_version() -> str:
    try:
        return version("dicom-node")
    except PackageNotFoundError:
        return "unknown"


class SegmentationEncoding(Enum):
    """How segments are stored: the SEG's SegmentationType (PS3.3 C.8.20.2).

    BINARY (1 bit per pixel, one frame per segment and slice, empty frames omitted) is what
    every SEG reader supports. LABELMAP (one frame per slice, Label Map Segmentation Storage
    1.2.840.10008.5.1.4.1.1.66.7) is planned; the choice is a parameter already so that callers
    do not change when it arrives.
    """

    BINARY = "BINARY"


@dataclass(frozen=True)
class AlgorithmInfo:
    """Segmentation Algorithm Identification (PS3.3 C.8.20.4) and TID 4019: the pipeline."""

    name: str
    version: str
    family: Code = ARTIFICIAL_INTELLIGENCE

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.version.strip():
            raise ValueError("an algorithm needs a name and a version")
        _check_long_string("algorithm name", self.name)  # AlgorithmName is LO
        _check_long_string("algorithm version", self.version)


@dataclass(frozen=True)
class WriterOptions:
    """Series and equipment attributes of the written SEG and SR (from the node's config)."""

    seg_series_number: int = 9901
    seg_series_description: str = "dicom-node segmentation"
    sr_series_number: int = 9902
    sr_series_description: str = "dicom-node measurements"
    manufacturer: str = "dicom-node"
    manufacturer_model_name: str = "dicom-node"
    software_versions: str = field(default_factory=_package_version)
    device_serial_number: str = "0"
    institution_name: str | None = None
    encoding: SegmentationEncoding = SegmentationEncoding.BINARY

    def __post_init__(self) -> None:
        for name in ("seg_series_number", "sr_series_number"):
            number = getattr(self, name)
            if not 0 <= number < 2**31:  # IS value range (PS3.5 6.2)
                raise ValueError(f"{name} must be an IS value 0..2^31-1 (got {number})")
        if self.seg_series_number == self.sr_series_number:
            raise ValueError("the SEG and the SR need different series numbers")
        for name in (
            "seg_series_description",
            "sr_series_description",
            "manufacturer",
            "manufacturer_model_name",
            "software_versions",
            "device_serial_number",
            "institution_name",
        ):
            value = getattr(self, name)
            if value is not None:
                _check_long_string(name, value)


def _check_long_string(name: str, value: str) -> None:
    """LO (PS3.5 6.2): at most 64 characters, no backslash, no control characters."""
    if len(value) > 64 or "\\" in value or any(ord(c) < 32 for c in value):
        raise ValueError(
            f"{name} must be a DICOM LO value: at most 64 characters, no backslash or "
            f"control characters (got {value!r})"
        )
