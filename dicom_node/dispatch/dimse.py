"""Destination kind `dimse`: C-STORE SCU (PS3.4 B.2) with pynetdicom.

One association per delivery; it proposes each SOP class of the files with the transfer syntax
it is stored in plus Explicit and Implicit VR Little Endian. Every instance must be answered
with Success or a Warning status (PS3.4 B.2.3: stored, perhaps coerced); anything else, a
refused association or a lost connection fails the whole delivery.

Files are streamed from storage as stored (pynetdicom's chunked send), never decoded: a SEG
with thousands of frames costs no parsing.

A destination with `tls` is reached over TLS (PS3.15 B.9, BCP 195 profile), its certificate
checked against `tls.ca_certificates` and, with `check_hostname`, against `host`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config

from dicom_node.config.models import DimseDestinationConfig
from dicom_node.errors import DispatchError
from dicom_node.tls import client_context

__all__ = ["send_dimse", "tls_arguments"]

logger = logging.getLogger(__name__)

_SUCCESS = 0x0000
_WARNINGS = {0x0001, 0xB000, 0xB006, 0xB007}


def tls_arguments(destination: DimseDestinationConfig) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's `tls_args` for `AE.associate` towards `destination` (None: no TLS). The
    C-MOVE SCP uses it for its sub-associations too."""
    if destination.tls is None:
        return None
    # The host is also the SNI name; the context decides whether it must match (check_hostname).
    return client_context(destination.tls), destination.host


def send_dimse(
    destination: DimseDestinationConfig, calling_ae_title: str, files: Sequence[Path]
) -> None:
    # pynetdicom reads this module-level switch when it sends a path: stream the file's dataset.
    _config.STORE_SEND_CHUNKED_DATASET = True
    metas = [(path, read_file_meta_info(path)) for path in files]
    ae = AE(ae_title=destination.calling_ae_title or calling_ae_title)
    ae.connection_timeout = destination.timeout_s  # TCP connect and the TLS handshake
    ae.acse_timeout = destination.timeout_s
    ae.dimse_timeout = destination.timeout_s
    ae.network_timeout = destination.timeout_s
    proposed: dict[str, list[str]] = {}
    for _, meta in metas:
        syntaxes = proposed.setdefault(str(meta.MediaStorageSOPClassUID), [])
        for syntax in (
            str(meta.TransferSyntaxUID),
            ExplicitVRLittleEndian,
            ImplicitVRLittleEndian,
        ):
            if syntax not in syntaxes:
                syntaxes.append(syntax)
    for sop_class, syntaxes in proposed.items():
        ae.add_requested_context(sop_class, syntaxes)
    tls_args = tls_arguments(destination)
    association = ae.associate(
        destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args
    )
    if not association.is_established:
        reason = "rejected" if association.is_rejected else "aborted or unreachable"
        if tls_args is not None and not association.is_rejected:
            reason += " (TLS: see the log for the handshake error)"
        raise DispatchError(
            f"association with {destination.ae_title}@{destination.host}:{destination.port} "
            f"{reason}"
        )
    try:
        for path, meta in metas:
            uid = meta.MediaStorageSOPInstanceUID
            status = association.send_c_store(path)
            code = getattr(status, "Status", None)
            if code is None:
                raise DispatchError(
                    f"no answer from {destination.ae_title} for {uid} "
                    "(connection lost or timed out)"
                )
            if code != _SUCCESS and code not in _WARNINGS:
                comment = getattr(status, "ErrorComment", "") or ""
                raise DispatchError(
                    f"{destination.ae_title} answered 0x{code:04X} for {uid} {comment}".strip()
                )
    finally:
        if association.is_established:
            association.release()
