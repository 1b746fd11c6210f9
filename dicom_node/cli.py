"""The `dicom-node` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dicom_node import __version__
from dicom_node.config import load_config
from dicom_node.errors import ConfigError
from dicom_node.logs import configure_logging

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID_CONFIG = 2

DEFAULT_CONFIG = Path("config/dicom-node.yaml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicom-node", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dicom-node {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (patient identifiers appear only at DEBUG)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the node (DIMSE SCP + HTTP)")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("path", type=Path)
    return parser


def _config_check(path: Path) -> int:
    try:
        load_config(path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    sys.stdout.write(f"{path}: valid\n")
    return EXIT_OK


def _serve(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    from dicom_node.server import serve  # heavy imports only when serving

    serve(config)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    os.environ["DICOM_NODE_LOG_LEVEL"] = args.log_level  # for the DIMSE worker processes
    if args.command == "serve":
        return _serve(args.config)
    return _config_check(args.path)


if __name__ == "__main__":
    sys.exit(main())
