"""`dicom-node send DIR --to AE@HOST:PORT`: C-STORE every DICOM file under DIR to a peer."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_FAILURE, EXIT_OK

__all__ = ["parse_peer", "register"]

_PEER = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")
_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255


def parse_peer(text: str) -> tuple[str, str, int]:
    match = _PEER.match(text)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not AE@HOST:PORT (e.g. DICOM_NODE@127.0.0.1:11112)"
        )
    return match["ae"], match["host"].strip("[]"), int(match["port"])


def register(commands: Any) -> None:
    send = commands.add_parser("send", help="send a folder of DICOM files by C-STORE")
    send.add_argument("folder", type=Path)
    send.add_argument("--to", required=True, type=parse_peer, metavar="AE@HOST:PORT")
    send.add_argument("--calling-ae", default="DICOM_NODE_SCU", help="our AE title")
    send.set_defaults(handler=_send)


def _progress(done: int, total: int, failed: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\r[{bar}] {done}/{total} sent, {failed} failed")
    sys.stderr.flush()


def _send(args: argparse.Namespace) -> int:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError
    from pynetdicom import AE

    ae_title, host, port = args.to
    files = sorted(path for path in args.folder.rglob("*") if path.is_file())
    headers = []
    for path in files:
        try:
            header = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            continue  # not a DICOM file (a README, a DICOMDIR is fine to skip too)
        meta = header.file_meta
        if "MediaStorageSOPClassUID" in meta and "TransferSyntaxUID" in meta:
            headers.append((path, header))
    if not headers:
        sys.stderr.write(f"no DICOM files under {args.folder}\n")
        return EXIT_FAILURE
    pairs = Counter(
        (str(h.file_meta.MediaStorageSOPClassUID), str(h.file_meta.TransferSyntaxUID))
        for _, h in headers
    )
    if len(pairs) > _MAX_CONTEXTS:
        sys.stderr.write(
            f"{len(pairs)} SOP class/transfer syntax pairs: at most 128 per association\n"
        )
        return EXIT_FAILURE
    ae = AE(ae_title=args.calling_ae)
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, syntax)
    association = ae.associate(host, port, ae_title=ae_title)
    if not association.is_established:
        sys.stderr.write(f"association with {ae_title}@{host}:{port} refused or failed\n")
        return EXIT_FAILURE
    failures: list[str] = []
    try:
        for done, (path, _) in enumerate(headers, start=1):
            status = association.send_c_store(path)
            code = getattr(status, "Status", None)
            if code is None or code not in (0x0000, 0x0001, 0xB000, 0xB006, 0xB007):
                shown = "no answer" if code is None else f"0x{code:04X}"
                failures.append(f"{path}: {shown} {getattr(status, 'ErrorComment', '') or ''}")
            _progress(done, len(headers), len(failures))
    finally:
        if association.is_established:
            association.release()
        sys.stderr.write("\n")
    for failure in failures:
        sys.stderr.write(f"failed: {failure.strip()}\n")
    sys.stdout.write(
        f"sent {len(headers) - len(failures)} of {len(headers)} instance(s) to {ae_title}\n"
    )
    return EXIT_FAILURE if failures else EXIT_OK
