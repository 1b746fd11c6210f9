"""Figures of a job's result (the LV volume curve of a cine) as PNG files beside the storage.

A pipeline returns curves (`pipelines.result.Curve`); the runner draws each as
``<storage>/figures/<job id>/<name>.png`` (matplotlib, no display needed) and the admin API
serves them at ``/api/jobs/{id}/figures/{name}.png``. A figure is a convenience for the
dashboard: the numbers are in the SR, so a figure that cannot be drawn is logged, not a failure.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipelines.result import Curve

__all__ = ["figure_folder", "figure_names", "write_figures"]

logger = logging.getLogger(__name__)


def figure_folder(storage_root: Path, job_id: int) -> Path:
    return storage_root / "figures" / str(job_id)


def figure_name(curve: Curve) -> str:
    """A file-name-safe name: "LV blood pool volume" -> "lv_blood_pool_volume"."""
    return re.sub(r"[^a-z0-9]+", "_", curve.name.lower()).strip("_") or "figure"


def figure_names(storage_root: Path, job_id: int) -> list[str]:
    folder = figure_folder(storage_root, job_id)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.png"))


def write_figures(storage_root: Path, job_id: int, curves: Sequence[Curve]) -> list[Path]:
    """Draw each curve (markers labelled) and write it atomically; returns the files."""
    if not curves:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder = figure_folder(storage_root, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for curve in curves:
        figure, axes = pyplot.subplots(figsize=(6.0, 3.6), dpi=100)
        try:
            axes.plot(curve.x, curve.y, marker="o", markersize=3, color="#c0392b")
            for label, index in curve.markers.items():
                axes.annotate(
                    f"{label} {curve.y[index]:.1f}",
                    (curve.x[index], curve.y[index]),
                    textcoords="offset points",
                    xytext=(4, 6),
                )
            axes.set_title(curve.name)
            axes.set_xlabel(curve.x_label)
            axes.set_ylabel(curve.y_label)
            axes.grid(alpha=0.3)
            figure.tight_layout()
            path = folder / f"{figure_name(curve)}.png"
            handle, scratch = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                figure.savefig(stream, format="png")
            os.replace(scratch, path)
            written.append(path)
        finally:
            pyplot.close(figure)
    return written
