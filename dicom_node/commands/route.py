"""`dicom-node route explain`: how the configured routes judge a series folder, and why."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_FAILURE, EXIT_INVALID_CONFIG, EXIT_OK
from dicom_node.commands.serve import DEFAULT_CONFIG
from dicom_node.config import load_config
from dicom_node.errors import ConfigError
from dicom_node.routing import (
    RouteExplanation,
    SeriesDescriptor,
    describe_series_folder,
    explain_routes,
)

__all__ = ["format_explanations", "register"]

ABSENT = "<absent>"


def register(commands: Any) -> None:
    route = commands.add_parser("route", help="routing tools")
    route_commands = route.add_subparsers(dest="route_command", required=True)
    explain = route_commands.add_parser(
        "explain",
        help="show, per route, each condition with the series' value and its result",
    )
    explain.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")
    explain.add_argument(
        "--calling-ae", help="calling AE title to assume (default: none, i.e. absent)"
    )
    explain.add_argument("--called-ae", help="called AE title to assume (default: node.ae_title)")
    explain.add_argument("series_dir", type=Path, help="folder with the instances of one series")
    explain.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID_CONFIG
    try:
        series = describe_series_folder(args.series_dir)
    except OSError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_FAILURE
    series = dataclasses.replace(
        series,
        calling_ae_title=args.calling_ae,
        called_ae_title=args.called_ae or config.node.ae_title,
    )
    explanations = explain_routes(config.routes, series)
    sys.stdout.write(format_explanations(series, explanations, args.series_dir))
    return EXIT_OK


def _shown(value: str | None) -> str:
    return ABSENT if value is None else f'"{value}"'


def format_explanations(
    series: SeriesDescriptor, explanations: Sequence[RouteExplanation], folder: Path
) -> str:
    """The text `route explain` prints: a header, then per route its verdict and one line per
    condition (field, operator, actual value, true/false), then the routes that apply."""
    uid = str(series.dataset.get("SeriesInstanceUID", "")).strip() or None
    lines = [
        f"series {_shown(uid)}: {series.instance_count} instances in {folder}",
        f"calling_ae {_shown(series.calling_ae_title)}, called_ae {_shown(series.called_ae_title)}",
    ]
    rows = [
        (item.field, item.operator, _shown(item.actual))
        for explanation in explanations
        for item in explanation.conditions
    ]
    widths = [max((len(row[column]) for row in rows), default=0) for column in range(3)]
    for explanation in explanations:
        verdict = "MATCH" if explanation.matched else "no match"
        targets = ", ".join(explanation.send_to)
        sending = f"send to {targets}" if targets else "results kept here only"
        lines.append("")
        lines.append(
            f"route {explanation.route}: {verdict} (pipeline {explanation.pipeline}, {sending})"
        )
        if not explanation.conditions:
            lines.append("  (no conditions: every series matches)")
        for item in explanation.conditions:
            cells = (item.field, item.operator, _shown(item.actual))
            padded = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            lines.append(f"  {padded}  {str(item.matched).lower()}")
    matched = [explanation.route for explanation in explanations if explanation.matched]
    lines.append("")
    if not explanations:
        lines.append("no routes configured")
    else:
        names = ", ".join(matched) if matched else "none"
        lines.append(f"{len(matched)} of {len(explanations)} routes match: {names}")
    return "\n".join(lines) + "\n"
