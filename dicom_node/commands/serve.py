"""`dicom-node serve` and `dicom-node config check`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_INVALID_CONFIG, EXIT_OK
from dicom_node.config import load_config
from dicom_node.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "register"]

DEFAULT_CONFIG = Path("config/dicom-node.yaml")


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the node (DIMSE SCP + HTTP)")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")
    serve.set_defaults(handler=_serve)

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("path", type=Path)
    check.set_defaults(handler=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    try:
        load_config(args.path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    sys.stdout.write(f"{args.path}: valid\n")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    from dicom_node.server import serve  # heavy imports only when serving

    serve(config)
    return EXIT_OK
