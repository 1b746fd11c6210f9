"""A test PKI made with `openssl`: a CA, a server certificate for 127.0.0.1/localhost, and a
client certificate, all signed by the CA; plus a second CA nobody trusts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.peers import require_command


@dataclass(frozen=True)
class Pki:
    ca: Path  # CA certificate (PEM), the trust anchor
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path
    # Another CA, and a certificate and key it signed: a peer presenting it is not trusted.
    other_ca: Path
    stranger_certificate: Path
    stranger_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(
        [require_command("openssl"), *map(str, args)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, certificate = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
        "-subj", f"/CN=dicom-node test {name}", "-keyout", key, "-out", certificate,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return certificate, key


def _leaf(folder: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, request, certificate = (folder / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-subj", f"/CN=dicom-node test {name}", "-keyout", key, "-out", request,
    )  # fmt: skip
    extension_file = folder / f"{name}.ext"
    extension_file.write_text(extensions, encoding="ascii")
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", extension_file, "-out", certificate,
    )  # fmt: skip
    return certificate, key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "ca")
    server = _leaf(
        folder,
        "server",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    client = _leaf(
        folder,
        "client",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
    )
    other_ca = _ca(folder, "other-ca")
    stranger = _leaf(
        folder,
        "stranger",
        other_ca,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    return Pki(
        ca=ca[0],
        server_certificate=server[0],
        server_key=server[1],
        client_certificate=client[0],
        client_key=client[1],
        other_ca=other_ca[0],
        stranger_certificate=stranger[0],
        stranger_key=stranger[1],
    )
