"""An evaluation as a text table or as JSON (NaN, i.e. undefined, is "n/a" and null)."""

from __future__ import annotations

import math
from typing import Any

from dicom_node.evaluation.comparison import EvaluationReport, StructureScores
from dicom_node.evaluation.metrics import OverlapScores

__all__ = ["NOT_AVAILABLE", "format_table", "report_as_json"]

NOT_AVAILABLE = "n/a"
_HEADER = (
    "structure", "pred", "ref", "Dice", "IoU", "HD95 mm",
    "V pred ml", "V ref ml", "dV ml", "dV %",
)  # fmt: skip
# Decimals per score: Dice and IoU to 1e-4, distances and volumes to 1e-2, percent to 0.1.
_SCORES: tuple[tuple[str, str], ...] = (
    ("dice", ".4f"),
    ("iou", ".4f"),
    ("hd95_mm", ".2f"),
    ("prediction_ml", ".2f"),
    ("reference_ml", ".2f"),
    ("volume_difference_ml", "+.2f"),
    ("volume_difference_percent", "+.1f"),
)


def format_table(report: EvaluationReport, prediction: str, reference: str) -> str:
    """Aligned columns, one row per structure and a last row of means; `pred`/`ref` are the
    label values in each input ("-": absent)."""
    grid = report.grid
    how = (
        "prediction resampled to the reference grid by position (nearest)"
        if report.prediction_resampled
        else "same grid"
    )
    lines = [
        f"prediction {prediction}",
        f"reference  {reference}",
        f"grid {'x'.join(map(str, grid.shape))} voxels of "
        f"{' x '.join(f'{s:g}' for s in grid.spacing)} mm, {how}",
        "",
    ]
    rows = [_row(item) for item in report.structures]
    means = report.means()
    rows.append(
        [f"mean ({len(report.structures)})", "", ""]
        + [_number(means[name], spec) for name, spec in _SCORES]
    )
    widths = [max(len(row[c]) for row in [list(_HEADER), *rows]) for c in range(len(_HEADER))]
    for row in [list(_HEADER), *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    if not report.structures:
        lines.append("(no structure has a voxel in either input)")
    return "\n".join(lines) + "\n"


def report_as_json(report: EvaluationReport, prediction: str, reference: str) -> dict[str, Any]:
    """The figures of the table as a JSON-ready object."""
    grid = report.grid
    return {
        "prediction": prediction,
        "reference": reference,
        "grid": {
            "shape": list(grid.shape),
            "spacing_mm": list(grid.spacing),
            "prediction_resampled": report.prediction_resampled,
        },
        "structures": [
            {
                "name": item.structure.name,
                "prediction_value": item.structure.prediction_value,
                "reference_value": item.structure.reference_value,
                **_scores(item.scores),
            }
            for item in report.structures
        ],
        "mean": {
            "structures": len(report.structures),
            **{name: _finite(value) for name, value in report.means().items()},
        },
    }


def _row(item: StructureScores) -> list[str]:
    structure = item.structure
    return [
        structure.name,
        "-" if structure.prediction_value is None else str(structure.prediction_value),
        "-" if structure.reference_value is None else str(structure.reference_value),
    ] + [_number(getattr(item.scores, name), spec) for name, spec in _SCORES]


def _scores(scores: OverlapScores) -> dict[str, float | None]:
    return {name: _finite(getattr(scores, name)) for name, _ in _SCORES}


def _number(value: float, spec: str) -> str:
    return NOT_AVAILABLE if math.isnan(value) else format(value, spec)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
