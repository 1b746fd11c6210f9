"""TLS contexts for DICOM and HTTP connections, built from the config.

DIMSE follows the BCP 195 TLS Secure Transport Connection Profile (PS3.15 B.9): TLS 1.2 or
later, forward-secret AEAD cipher suites for TLS 1.2 (TLS 1.3 suites are all acceptable), the
peer's certificate checked against the configured CA certificates. The same rules serve the
HTTP side (PS3.18 8.10 refers to the same profiles).

`server_context` serves the DIMSE SCP (and anything else listening with a certificate);
`client_context` serves every outgoing connection: C-STORE and C-MOVE sub-associations to
`dimse` destinations, STOW-RS to `dicomweb` destinations.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from dicom_node.config.models import DimseTlsConfig, HttpTlsConfig, TlsClientConfig

__all__ = ["BCP195_CIPHERS", "client_context", "server_context"]

# TLS 1.2 suites of BCP 195 (RFC 9325 4.2): ECDHE/DHE key exchange with AES-GCM or
# ChaCha20-Poly1305. OpenSSL's TLS 1.3 suites are configured separately and all qualify.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def server_context(config: DimseTlsConfig | HttpTlsConfig) -> ssl.SSLContext:
    """A server-side context with our certificate and key.

    With `ca_certificates` (DIMSE), a client certificate that is presented is checked against
    them; with `require_client_certificate`, a client without one fails the handshake."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(certfile=Path(config.certificate), keyfile=Path(config.key))
    if isinstance(config, DimseTlsConfig) and config.ca_certificates is not None:
        context.load_verify_locations(cafile=Path(config.ca_certificates))
        context.verify_mode = (
            ssl.CERT_REQUIRED if config.require_client_certificate else ssl.CERT_OPTIONAL
        )
    return context


def client_context(config: TlsClientConfig | None) -> ssl.SSLContext:
    """A client-side context: the peer's certificate must chain to `ca_certificates` (the
    system's CA store when not given) and, with `check_hostname`, name the host we dialled;
    our certificate is presented when configured. `None` means the defaults."""
    config = config or TlsClientConfig()
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if config.ca_certificates is not None:
        context.load_verify_locations(cafile=Path(config.ca_certificates))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = config.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if config.certificate is not None and config.key is not None:
        context.load_cert_chain(certfile=Path(config.certificate), keyfile=Path(config.key))
    return context
