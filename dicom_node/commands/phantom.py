"""`dicom-node phantom`: write the synthetic torso CT as a DICOM series (and its ground truth)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_FAILURE, EXIT_OK
from dicom_node.phantom import LABEL_SUFFIXES, make_torso, write_labels, write_series

__all__ = ["register"]

# The field of view and the head-feet coverage stay the same whatever the matrix: a larger
# --size or more --slices gives finer voxels of the same torso.
FIELD_OF_VIEW_MM = 384.0
COVERAGE_MM = 300.0


def register(commands: Any) -> None:
    phantom = commands.add_parser(
        "phantom",
        help="write a synthetic torso CT series (body, lungs, airway, bone, fat)",
        description=(
            "Write a synthetic torso CT (HFS, axial) as a CT Image Storage series, one file per "
            f"slice, covering {FIELD_OF_VIEW_MM:g} mm across and {COVERAGE_MM:g} mm head to feet "
            "unless spacings are given."
        ),
    )
    phantom.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    phantom.add_argument("--size", type=_positive_int, default=256, help="rows and columns")
    phantom.add_argument("--rows", type=_positive_int, help="rows (default: --size)")
    phantom.add_argument("--columns", type=_positive_int, help="columns (default: --size)")
    phantom.add_argument("--slices", type=_positive_int, default=120, help="number of slices")
    phantom.add_argument("--pixel-spacing", type=_positive_float, help="mm (default: FOV / size)")
    phantom.add_argument(
        "--slice-spacing", type=_positive_float, help="mm (default: coverage / slices)"
    )
    phantom.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same pixels)")
    phantom.add_argument("--noise", type=float, default=15.0, help="noise SD in HU (default 15)")
    phantom.add_argument(
        "--labels", type=Path, help="also write the ground-truth label map (.npy, .nii, .nii.gz)"
    )
    phantom.set_defaults(handler=_phantom)


def _phantom(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        sys.stderr.write(f"{out} exists and is not an empty folder; not mixing series\n")
        return EXIT_FAILURE
    if args.labels is not None and not args.labels.name.lower().endswith(LABEL_SUFFIXES):
        sys.stderr.write(f"--labels must end in {', '.join(LABEL_SUFFIXES)}\n")
        return EXIT_FAILURE
    rows = args.rows or args.size
    columns = args.columns or args.size
    pixel = args.pixel_spacing or FIELD_OF_VIEW_MM / max(rows, columns)
    step = args.slice_spacing or COVERAGE_MM / args.slices
    volume, labels = make_torso(
        (args.slices, rows, columns), (step, pixel, pixel), args.seed, noise_hu=args.noise
    )
    try:
        paths = write_series(out, volume)
        if args.labels is not None:
            write_labels(args.labels, labels, volume)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_FAILURE
    sys.stdout.write(
        f"wrote {len(paths)} CT files ({args.slices}x{rows}x{columns}, "
        f"{step:g} mm slices, {pixel:g} mm pixels) to {out}\n"
    )
    if args.labels is not None:
        sys.stdout.write(f"wrote ground-truth labels to {args.labels}\n")
    return EXIT_OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {text})")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text})")
    return value
