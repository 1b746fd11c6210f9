"""Typed configuration of a dicom-node (the YAML file an ops admin edits).

Every model forbids unknown keys and never swaps a bad value for a default: a config either
validates completely or the node refuses to start with every problem listed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dicom_node.routing.matchers import FieldCondition, compile_match
from dicom_node.routing.rules import MatchConfig
from pipelines import pipeline_names

__all__ = [
    "BasicAuthConfig",
    "BearerAuthConfig",
    "DatabaseConfig",
    "DestinationAuthConfig",
    "DestinationConfig",
    "DicomWebDestinationConfig",
    "DimseConfig",
    "DimseDestinationConfig",
    "DimseTlsConfig",
    "DuplicatePolicy",
    "ExecutorConfig",
    "ExpectedCountRule",
    "HttpAuthConfig",
    "HttpConfig",
    "HttpTlsConfig",
    "InferenceConfig",
    "LocalExecutorConfig",
    "MissingUidPolicy",
    "NodeConfig",
    "NodeIdentityConfig",
    "PeerConfig",
    "ResultsConfig",
    "RouteConfig",
    "SeriesConfig",
    "StorageConfig",
    "TlsClientConfig",
    "UserConfig",
    "ViewerConfig",
]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _check_ae_title(value: str) -> str:
    """PS3.5 6.2 AE VR: 1-16 characters of the default repertoire, no backslash or control
    characters; leading/trailing spaces are not significant, so a blank title is refused."""
    if not value.strip():
        raise ValueError("AE title must not be empty or blank")
    if len(value) > 16:
        raise ValueError(f"AE title must be at most 16 characters (got {len(value)})")
    if "\\" in value:
        raise ValueError("AE title must not contain a backslash")
    if _CONTROL_CHARS.search(value):
        raise ValueError("AE title must not contain control characters")
    if not value.isascii():
        raise ValueError("AE title must use the DICOM default character repertoire (ASCII)")
    return value.strip()


def _check_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("port must be between 0 and 65535 (0 picks a free port)")
    return value


AeTitle = Annotated[str, AfterValidator(_check_ae_title)]
Port = Annotated[StrictInt, AfterValidator(_check_port)]


def _parse_network(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from None


HostNetwork = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_parse_network)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeIdentityConfig(_Model):
    ae_title: AeTitle = "DICOM_NODE"


class PeerConfig(_Model):
    """A DIMSE peer allowed to associate: its calling AE title and, optionally, where it may
    connect from (addresses or CIDR networks). No `hosts` means any host."""

    ae_title: AeTitle
    hosts: list[HostNetwork] = Field(default_factory=list)

    def admits(self, calling_ae_title: str, address: str) -> bool:
        if calling_ae_title.strip() != self.ae_title:
            return False
        if not self.hosts:
            return True
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.hosts)


def _check_file(value: Path, info: ValidationInfo) -> Path:
    """A file that must exist; a relative path is relative to the config file's folder
    (the loader passes it as the validation context `base`)."""
    base = (info.context or {}).get("base")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    if not value.is_file():
        raise ValueError(f"file {str(value)!r} does not exist or is not a file")
    return value


ExistingFile = Annotated[Path, AfterValidator(_check_file)]


class DimseTlsConfig(_Model):
    """DICOM TLS on the SCP (PS3.15 B.1/B.9 secure transport connection profiles).

    Without `port`, `dimse.port` itself speaks only TLS (nothing in the clear). With `port`,
    `dimse.port` stays plain and this second port speaks TLS (for sites that still have
    equipment without TLS)."""

    certificate: ExistingFile
    key: ExistingFile
    # CA certificates (PEM) that client certificates are checked against.
    ca_certificates: ExistingFile | None = None
    require_client_certificate: bool = False
    port: Port | None = None

    @model_validator(mode="after")
    def _ca_for_client_certificates(self) -> DimseTlsConfig:
        if self.require_client_certificate and self.ca_certificates is None:
            raise ValueError("require_client_certificate needs ca_certificates to check them")
        return self


class DimseConfig(_Model):
    host: str = "127.0.0.1"
    port: Port = 11112
    # None: any calling AE from any host may associate. A list: only those peers.
    allowed_peers: list[PeerConfig] | None = None
    max_associations: Annotated[int, Field(ge=1, le=1000)] = 16
    # Processes accepting associations on the one port ("auto": one per CPU, at most 4).
    # Python runs one thread at a time per process; several processes use several cores.
    workers: Annotated[int, Field(ge=1, le=32)] | Literal["auto"] = "auto"
    # Largest PDU we accept (PS3.8 D.1 Maximum Length Received); 0 means "no limit".
    # Senders may use less: dcmtk caps its PDUs at 128 KiB.
    max_pdu_size: Annotated[int, Field(ge=0)] = 4 * 1024 * 1024
    acse_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    dimse_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    network_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # On shutdown, associations still running after this many seconds are aborted.
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0
    tls: DimseTlsConfig | None = None
    # C-FIND: at most this many matches are returned (the rest are refused with a warning
    # in the log and the final status says how the query ended); 0 = no limit.
    max_find_results: Annotated[int, Field(ge=0)] = 10000

    def worker_count(self) -> int:
        return _worker_count(self.workers)


def _worker_count(workers: int | Literal["auto"]) -> int:
    """A `workers` setting as a number ("auto": one per CPU, at most 4)."""
    if workers == "auto":
        return max(1, min(os.cpu_count() or 1, 4))
    return workers


_SHA256_HEX = r"^[0-9a-f]{64}$"


def _check_secret_env(name: str) -> str:
    """A secret's environment variable must be set (and not empty) when the config is loaded,
    so that `config check` and the start both name a missing one (docs/SECURITY.md)."""
    if not os.environ.get(name):
        raise ValueError(f"environment variable {name} (holding a secret) is not set or empty")
    return name


SecretEnv = Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"), AfterValidator(_check_secret_env)
]


class _Secret(_Model):
    """A secret given as its SHA-256 (hex) or read from an environment variable at start;
    never in clear text in the file."""

    sha256: Annotated[str, Field(pattern=_SHA256_HEX)] | None = None
    env: SecretEnv | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Secret:
        if (self.sha256 is None) == (self.env is None):
            raise ValueError("give exactly one of sha256 or env")
        return self


class UserConfig(_Secret):
    """An HTTP basic user: the password's SHA-256, or an environment variable holding it."""

    username: Annotated[str, Field(min_length=1, pattern=r"^[^:]+$")]


class TokenConfig(_Secret):
    """An HTTP bearer token: its SHA-256, or an environment variable holding it."""

    name: Annotated[str, Field(min_length=1)]


class NoAuthConfig(_Model):
    kind: Literal["none"] = "none"


class BasicAuthConfig(_Model):
    kind: Literal["basic"]
    users: Annotated[list[UserConfig], Field(min_length=1)]
    realm: str = "dicom-node"


class BearerAuthConfig(_Model):
    kind: Literal["bearer"]
    tokens: Annotated[list[TokenConfig], Field(min_length=1)]


HttpAuthConfig = Annotated[
    NoAuthConfig | BasicAuthConfig | BearerAuthConfig, Field(discriminator="kind")
]


class HttpTlsConfig(_Model):
    """HTTPS: the HTTP port speaks only TLS."""

    certificate: ExistingFile
    key: ExistingFile


def _check_viewer_build(value: Path, info: ValidationInfo) -> Path:
    """A folder with an index.html (an OHIF `dist/`); relative to the config file's folder."""
    base = (info.context or {}).get("base")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    if not (value / "index.html").is_file():
        raise ValueError(f"{str(value)!r} has no index.html: not a viewer build (an OHIF dist/)")
    return value


class ViewerConfig(_Model):
    """A static OHIF build (its `dist/` folder) served at the web root, reading the node's own
    DICOMweb same-origin (docs/VIEWER.md)."""

    path: Annotated[Path, AfterValidator(_check_viewer_build)]


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: Port = 8080
    # Who may call /dicomweb and /api. /api/health stays open for load balancers.
    auth: HttpAuthConfig = Field(default_factory=NoAuthConfig)
    # Origins allowed to call from a browser (CORS), e.g. https://ohif.example.org; "*" for any.
    cors_origins: list[str] = Field(default_factory=list)
    tls: HttpTlsConfig | None = None
    # Largest request body accepted (STOW-RS); larger requests get 413 and nothing is stored.
    max_request_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024**3
    viewer: ViewerConfig | None = None
    # Processes serving HTTP on the one port ("auto": one per CPU, at most 4), as dimse.workers.
    workers: Annotated[int, Field(ge=1, le=32)] | Literal["auto"] = "auto"
    # On shutdown, requests still running after this many seconds are cancelled.
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0

    def worker_count(self) -> int:
        return _worker_count(self.workers)


class DuplicatePolicy(StrEnum):
    """What a re-sent SOP Instance with *different* bytes does (identical bytes always succeed)."""

    REPLACE = "replace"  # new bytes become current; the old file is kept under superseded/
    REJECT = "reject"  # the first version stays; the sender gets 0x0111 Duplicate SOP Instance


class MissingUidPolicy(StrEnum):
    """What an instance with empty/absent SOP Instance, Series or Study UIDs does."""

    REFUSE = "refuse"  # failure status naming the missing UIDs; nothing stored
    REPAIR = "repair"  # SOP UIDs from the C-STORE request, Study/Series UIDs derived; 0xB000


class StorageConfig(_Model):
    path: Path = Path("var/storage")
    on_duplicate: DuplicatePolicy = DuplicatePolicy.REPLACE
    missing_uids: MissingUidPolicy = MissingUidPolicy.REPAIR
    # Refuse new instances (0xA700) while less than this is free, so the index can still commit.
    min_free_bytes: Annotated[int, Field(ge=0)] = 256 * 1024 * 1024
    fsync: bool = True


class DatabaseConfig(_Model):
    # SQLAlchemy URL; a relative SQLite path is relative to the config file.
    url: str = "sqlite:///var/index.sqlite"
    echo: bool = False


class ExpectedCountRule(StrEnum):
    """Where the data may say how many instances a series will have (docs/SERIES.md)."""

    IMAGES_IN_ACQUISITION = "images_in_acquisition"  # ImagesInAcquisition, one acquisition
    PET_SLICES = "pet_slices"  # PT: NumberOfSlices x NumberOfTimeSlices
    CARDIAC_SINGLE_LOCATION = "cardiac_single_location"  # CardiacNumberOfImages, one location


class SeriesConfig(_Model):
    # A series is complete once no instance arrived for this long ...
    stable_after_s: Annotated[float, Field(gt=0)] = 30.0
    # ... or as soon as the count the data announces is reached (rules applied in this order).
    expected_count_rules: list[ExpectedCountRule] = Field(
        default_factory=lambda: [
            ExpectedCountRule.IMAGES_IN_ACQUISITION,
            ExpectedCountRule.PET_SLICES,
        ]
    )
    # How often the scheduler looks for complete series.
    check_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5


class LocalExecutorConfig(_Model):
    kind: Literal["local"] = "local"
    # Job worker processes on this machine; each keeps its pipelines (and models) loaded.
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # A job failing with a transient error (I/O, a worker crash) is retried this often ...
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    # ... after this many seconds, doubling each time.
    retry_backoff_s: Annotated[float, Field(ge=0)] = 10.0
    # Seconds a stopping node waits for running jobs before it stops their workers
    # (an interrupted job is queued again at the next start).
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 5.0


def _default_executor_kind(value: object) -> object:
    # `kind` may be left out while `local` is the only executor (the scale-out adds others).
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "local", **value}
    return value


ExecutorConfig = Annotated[
    LocalExecutorConfig, Field(discriminator="kind"), BeforeValidator(_default_executor_kind)
]


class _DeliveryPolicy(_Model):
    # A send that fails (any instance) is retried up to this many attempts in all, then it is
    # dead-lettered (visible in /api/jobs; `dicom-node jobs retry` sends it again).
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 10
    # Seconds before the second attempt, doubling each time, at most `retry_backoff_max_s`.
    retry_backoff_s: Annotated[float, Field(ge=0)] = 5.0
    retry_backoff_max_s: Annotated[float, Field(ge=0)] = 600.0


class TlsClientConfig(_Model):
    """TLS towards a peer: the CA certificates its certificate must chain to (default: the
    system's), and our client certificate when the peer requires one."""

    ca_certificates: ExistingFile | None = None
    certificate: ExistingFile | None = None
    key: ExistingFile | None = None
    # Check that the peer's certificate names `host` (turn off only for IP-addressed test peers).
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> TlsClientConfig:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key go together")
        return self


class DimseDestinationConfig(_DeliveryPolicy):
    """A DIMSE peer: results are sent to it by C-STORE, and it is a C-MOVE destination
    (the node's C-MOVE SCP finds it by `ae_title`)."""

    kind: Literal["dimse"]
    ae_title: AeTitle
    host: str
    port: Annotated[StrictInt, Field(ge=1, le=65535)]
    # Our calling AE title towards this peer (default: node.ae_title).
    calling_ae_title: AeTitle | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    tls: TlsClientConfig | None = None


class DestinationAuthConfig(_Model):
    """Credentials the node presents to a DICOMweb server; secrets come from the environment."""

    kind: Literal["basic", "bearer"]
    username: str | None = None
    # Environment variable holding the password (basic) or the token (bearer).
    secret_env: SecretEnv

    @model_validator(mode="after")
    def _username_for_basic(self) -> DestinationAuthConfig:
        if (self.kind == "basic") != (self.username is not None):
            raise ValueError("username is required for basic and only for basic")
        return self


class DicomWebDestinationConfig(_DeliveryPolicy):
    """A DICOMweb server: results are sent by STOW-RS (PS3.18 10.5) to `{url}/studies`."""

    kind: Literal["dicomweb"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    auth: DestinationAuthConfig | None = None
    # Instances per STOW-RS request; a delivery with more is sent in several requests.
    max_instances_per_request: Annotated[int, Field(ge=1, le=10000)] = 100
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    tls: TlsClientConfig | None = None


DestinationConfig = Annotated[
    DimseDestinationConfig | DicomWebDestinationConfig, Field(discriminator="kind")
]


def _check_device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda|cuda:[0-9]+", value):
        raise ValueError(f"device {value!r} must be auto, cpu, cuda or cuda:N")
    return value


class InferenceConfig(_Model):
    """Where the job workers run models (docs/MODELS.md)."""

    # auto: the first CUDA GPU when there is one, else the CPU; cuda or cuda:N: that GPU
    # (a job fails, naming it, where it is missing); cpu.
    device: Annotated[str, AfterValidator(_check_device)] = "auto"
    # Models each job worker keeps loaded, in MB of weights; the least recently used beyond
    # this are unloaded (the model in use never is).
    resident_memory_mb: Annotated[int, Field(ge=256)] = 4096


class ResultsConfig(_Model):
    """How the node's own SEG and SR series are labelled."""

    seg_series_number: Annotated[int, Field(ge=0, le=2**31 - 1)] = 9901
    seg_series_description: Annotated[str, Field(max_length=64)] = "dicom-node segmentation"
    sr_series_number: Annotated[int, Field(ge=0, le=2**31 - 1)] = 9902
    sr_series_description: Annotated[str, Field(max_length=64)] = "dicom-node measurements"
    institution_name: Annotated[str, Field(max_length=64)] | None = None


class RouteConfig(_Model):
    """A series meeting every condition of `match` runs `pipeline`; the results go to each of
    `send_to` (docs/ROUTING.md). Every matching route applies, not only the first."""

    name: Annotated[str, Field(min_length=1)]
    # Field (DICOM keyword, calling_ae, called_ae, instance_count) -> condition.
    # Left out or {}: every series matches.
    match: MatchConfig = Field(default_factory=dict)
    pipeline: str
    send_to: list[str] = Field(default_factory=list)
    _conditions: tuple[FieldCondition, ...] = PrivateAttr(default=())

    @field_validator("pipeline")
    @classmethod
    def _known_pipeline(cls, name: str) -> str:
        known = pipeline_names()
        if name not in known:
            raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(sorted(known))})")
        return name

    @model_validator(mode="after")
    def _compile(self) -> RouteConfig:
        # Compiled once here, so evaluating a series never compiles a regex.
        self._conditions = compile_match(self.match)
        return self

    @property
    def conditions(self) -> tuple[FieldCondition, ...]:
        return self._conditions


class NodeConfig(_Model):
    """The whole node: top-level keys as DESIGN.md fixes them."""

    node: NodeIdentityConfig = Field(default_factory=NodeIdentityConfig)
    dimse: DimseConfig = Field(default_factory=DimseConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    series: SeriesConfig = Field(default_factory=SeriesConfig)
    executor: ExecutorConfig = Field(default_factory=LocalExecutorConfig)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    pipelines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models_dir: Path = Path("var/models")
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)

    @model_validator(mode="after")
    def _check_references(self) -> NodeConfig:
        problems: list[str] = []
        seen: set[str] = set()
        for index, route in enumerate(self.routes):
            if route.name in seen:
                problems.append(f"routes.{index}.name: duplicate route name {route.name!r}")
            seen.add(route.name)
            for twice in sorted({name for name in route.send_to if route.send_to.count(name) > 1}):
                problems.append(f"routes.{index}.send_to: destination {twice!r} is listed twice")
            for target in route.send_to:
                if target not in self.destinations:
                    known = ", ".join(sorted(self.destinations)) or "none configured"
                    problems.append(
                        f"routes.{index}.send_to: unknown destination {target!r} (known: {known})"
                    )
        if problems:
            # One line per problem, each naming its own YAML path (see loading.format_problems).
            raise ValueError("\n".join(problems))
        return self
