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
        config = load_config(args.path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    from dicom_node.jobs.intake import routed_models
    from pipelines.models import ModelStore

    try:
        needs = routed_models(config)
    except ValueError as exc:  # a routed pipeline's options (`pipelines.<name>`)
        sys.stderr.write(f"{args.path}: pipelines: {exc}\n")
        return EXIT_INVALID_CONFIG
    # A missing model is not a config error (it is installed separately, maybe later), but
    # every job of the route would fail until it is.
    store = ModelStore(config.models_dir)
    for route in config.routes:
        for model in needs[route.pipeline]:
            if not store.has(model):
                sys.stderr.write(
                    f"warning: route {route.name}: pipeline {route.pipeline} needs model"
                    f" '{model}', which is not installed"
                    f" (dicom-node models install SOURCE --name {model})\n"
                )
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
