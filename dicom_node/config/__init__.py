"""Configuration: pydantic models (`models`) and the YAML loader (`loading`)."""

from dicom_node.config.loading import ConfigProblem, load_config
from dicom_node.config.models import (
    DatabaseConfig,
    DimseConfig,
    DuplicatePolicy,
    HttpConfig,
    MissingUidPolicy,
    NodeConfig,
    PeerConfig,
    SeriesConfig,
    StorageConfig,
)

__all__ = [
    "ConfigProblem",
    "DatabaseConfig",
    "DimseConfig",
    "DuplicatePolicy",
    "HttpConfig",
    "MissingUidPolicy",
    "NodeConfig",
    "PeerConfig",
    "SeriesConfig",
    "StorageConfig",
    "load_config",
]
