"""The `dicom-node` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from dicom_node import __version__
from dicom_node.commands import evaluate, jobs, models, phantom, route, send, serve
from dicom_node.logs import configure_logging

__all__ = ["main"]

# Command groups in the order `--help` lists them; each module registers its own parsers.
_COMMAND_MODULES: list[Any] = [serve, route, jobs, models, send, phantom, evaluate]


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
    for module in _COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    os.environ["DICOM_NODE_LOG_LEVEL"] = args.log_level  # for the DIMSE worker processes
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
