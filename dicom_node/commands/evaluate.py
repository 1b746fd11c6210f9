"""`dicom-node evaluate PRED REF`: Dice, IoU, HD95 and volumes per structure (docs/EVALUATE.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dicom_node.commands import EXIT_OK
from dicom_node.evaluation import (
    EvaluationError,
    compare_label_images,
    format_table,
    input_kind,
    read_label_image,
    read_label_names,
    report_as_json,
)

__all__ = ["EXIT_UNUSABLE_INPUT", "register"]

# Unreadable input, or inputs that cannot be put on one grid (one line on stderr says which).
EXIT_UNUSABLE_INPUT = 2


def register(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a segmentation against a reference (Dice, IoU, HD95, volumes)",
        description=(
            "Score PRED against REF per structure: Dice, IoU, HD95 (mm) and volumes (ml). Each "
            "is a DICOM SEG, a NIfTI label map (.nii, .nii.gz; also .nrrd, .mha) or a .npy "
            "array on the other's grid. Different grids: the prediction is resampled to the "
            "reference's grid by position (nearest). Exit 2 on unusable input."
        ),
    )
    evaluate.add_argument("prediction", type=Path, metavar="PRED", help="predicted label map")
    evaluate.add_argument("reference", type=Path, metavar="REF", help="reference label map")
    evaluate.add_argument(
        "--labels",
        type=_names,
        metavar="A,B",
        default=(),
        help="comma-separated structures to score (names, or reference label values); "
        "default: every structure with a voxel in either input",
    )
    evaluate.add_argument(
        "--label-map",
        type=Path,
        metavar="JSON",
        help="JSON value -> name (or name -> value, e.g. nnU-Net's dataset.json) for the "
        "NIfTI/npy inputs",
    )
    evaluate.add_argument(
        "--prediction-label-map", type=Path, metavar="JSON", help="the same, PRED only"
    )
    evaluate.add_argument(
        "--reference-label-map", type=Path, metavar="JSON", help="the same, REF only"
    )
    evaluate.add_argument(
        "--spacing",
        type=_spacing,
        metavar="S,R,C",
        help="slice,row,column mm for two .npy inputs (which carry no geometry; default 1,1,1)",
    )
    evaluate.add_argument(
        "--format", choices=["table", "json"], default="table", help="what to print on stdout"
    )
    evaluate.add_argument(
        "--json", type=Path, dest="json_out", metavar="FILE", help="also write JSON here"
    )
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    try:
        prediction = read_label_image(
            args.prediction, _label_names(args.prediction, args.prediction_label_map, args)
        )
        reference = read_label_image(
            args.reference, _label_names(args.reference, args.reference_label_map, args)
        )
        report = compare_label_images(
            prediction, reference, labels=args.labels, spacing=args.spacing
        )
    except EvaluationError as exc:
        sys.stderr.write(f"evaluate: {exc}\n")
        return EXIT_UNUSABLE_INPUT
    figures = report_as_json(report, str(args.prediction), str(args.reference))
    if args.json_out is not None:
        try:
            args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            sys.stderr.write(f"evaluate: cannot write {args.json_out}: {exc}\n")
            return EXIT_UNUSABLE_INPUT
    if args.format == "json":
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(report, str(args.prediction), str(args.reference)))
    return EXIT_OK


def _label_names(path: Path, own: Path | None, args: argparse.Namespace) -> dict[int, str] | None:
    """The names for one input: its own file, else --label-map unless the input is a SEG
    (which names its segments itself)."""
    chosen = own if own is not None else args.label_map
    if chosen is None or (own is None and input_kind(path) == "seg"):
        return None
    return read_label_names(chosen)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one structure")
    return names


def _spacing(text: str) -> tuple[float, float, float]:
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not three numbers") from None
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not three positive numbers")
    return values[0], values[1], values[2]
