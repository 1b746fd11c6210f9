"""`dicom-node models list|install|verify|remove`: the model store (`models_dir`) by hand.

Exit status: 0 done; 1 `verify` found problems (or the filesystem failed); 2 bad input (an
unknown model, a source that is not a model, an invalid spec or config). Errors are one line
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_FAILURE, EXIT_INVALID_CONFIG, EXIT_OK
from dicom_node.commands.serve import DEFAULT_CONFIG
from dicom_node.config import load_config
from dicom_node.errors import ConfigError
from pipelines.models import ModelError, ModelFormat, ModelStore

__all__ = ["register"]

EXIT_BAD_INPUT = EXIT_INVALID_CONFIG


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file (its models_dir)"
    )
    parser.add_argument(
        "--models-dir", type=Path, help="use this folder instead of the config's models_dir"
    )


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="install, list, verify and remove model weights")
    models_commands = models.add_subparsers(dest="models_command", required=True)

    listing = models_commands.add_parser("list", help="installed models and their state")
    _common(listing)
    listing.set_defaults(handler=_guarded(_list))

    install = models_commands.add_parser(
        "install",
        help="install a model from an nnU-Net v2 results folder or zip, a MONAI checkpoint,"
        " a TorchScript or ONNX file (with --spec), a model folder, or a zip of these",
    )
    install.add_argument("source", type=Path, help="folder, weight file or zip")
    install.add_argument("--name", required=True, help="the name pipelines use for the model")
    install.add_argument(
        "--spec", type=Path, help="YAML with the manifest fields the format lacks (labels, ...)"
    )
    install.add_argument(
        "--format",
        choices=[str(value) for value in ModelFormat],
        help="the format, when the source does not make it clear",
    )
    install.add_argument("--version", help="version to record (when the spec gives none)")
    install.add_argument("--replace", action="store_true", help="replace a model of that name")
    _common(install)
    install.set_defaults(handler=_guarded(_install))

    verify = models_commands.add_parser(
        "verify", help="re-hash a model's files; exit 1 listing any problem"
    )
    verify.add_argument("name")
    _common(verify)
    verify.set_defaults(handler=_guarded(_verify))

    remove = models_commands.add_parser("remove", help="remove an installed model")
    remove.add_argument("name")
    _common(remove)
    remove.set_defaults(handler=_guarded(_remove))


def _store(args: argparse.Namespace) -> ModelStore:
    if args.models_dir is not None:
        return ModelStore(args.models_dir)
    return ModelStore(load_config(args.config).models_dir)


def _error(message: str, status: int) -> int:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    return status


def _guarded(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Errors become one line on stderr and an exit status, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            return EXIT_INVALID_CONFIG
        except ModelError as exc:
            return _error(str(exc), EXIT_BAD_INPUT)
        except OSError as exc:
            return _error(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_FAILURE)

    return run


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = [("name", "version", "format", "labels", "modality", "status")]
    notes: list[str] = []
    for model in store.list():
        manifest = model.manifest
        missing = store.missing_files(model.name)
        if missing:
            notes.append(f"{model.name}: missing file(s) {', '.join(missing)}")
        rows.append(
            (
                model.name,
                manifest.version,
                str(manifest.format),
                str(len(manifest.labels)),
                manifest.modality or "-",
                "PROBLEM" if missing else "ok",
            )
        )
    for folder, problem in store.problems().items():
        rows.append((folder, "-", "-", "-", "-", "PROBLEM"))
        notes.append(f"{folder}: {problem}")
    if len(rows) == 1:
        sys.stdout.write(f"no models installed in {store.root}\n")
        return EXIT_OK
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    for note in notes:
        sys.stdout.write(f"PROBLEM {note}\n")
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    store = _store(args)
    model = store.install(
        args.source,
        args.name,
        spec=args.spec,
        version=args.version,
        replace=args.replace,
        model_format=ModelFormat(args.format) if args.format else None,
    )
    manifest = model.manifest
    sys.stdout.write(
        f"installed {model.name} (version {manifest.version}, {manifest.format},"
        f" {len(manifest.labels)} labels) in {model.folder.resolve()}\n"
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    problems = _store(args).verify(args.name)
    if not problems:
        sys.stdout.write(f"{args.name}: ok\n")
        return EXIT_OK
    for problem in problems:
        sys.stdout.write(f"{args.name}: {problem}\n")
    return EXIT_FAILURE


def _remove(args: argparse.Namespace) -> int:
    _store(args).remove(args.name)
    sys.stdout.write(f"removed {args.name}\n")
    return EXIT_OK
