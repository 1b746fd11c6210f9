"""Label map back to the source grid: the runtime's torch nearest label vs nnU-Net's scipy path.

A 117-label map on a 1.5 mm model grid goes back to a 300x512x512 CT grid (1.0 x 0.8 x 0.8 mm,
slice x row x column), as after a TotalSegmentator-size prediction. Timed in the same process:

- torch: `pipelines.runtime.resample.resample_labels` (nearest label, gathers in slabs along z;
  its cost does not depend on the number of labels);
- scipy: nnU-Net's `resample_data_or_seg_to_shape(..., is_seg=True)` with the kwargs nnU-Net's
  default plans give `resampling_fn_seg` (order 1: one indicator resized per label with
  scikit-image/scipy, then the per-voxel winner). nnU-Net's export resamples the logits of every
  class the same way before its argmax (`resampling_fn_probabilities`, also order 1), so the
  per-class cost is the same; its memory (117 float channels at 300x512x512, 37 GB) is not
  affordable here.

The scipy path runs once. At full size it takes 3 to 6 minutes on this shared 2-CPU machine,
so by default it runs on a z slab: `--fraction` of the slices (0.5), cut where model and source
slices line up. It resizes one indicator of the whole slab per label present in the slab, so
its full-size time is extrapolated as slab time / fraction * (labels / labels in the slab).
`--fraction 1` measures the full grid. torch runs on the same slab and on the full grid
(median and best of `--repeat`). Voxel agreement is measured on the slab: the two differ by
design along label borders (nearest label vs per-label linear interpolation).

    cd /work/main && .venv/bin/python -m bench.resample [--fraction 0.5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.runtime.resample import resample_labels, target_shape  # noqa: E402

SOURCE_SHAPE = (300, 512, 512)
SOURCE_SPACING = (1.0, 0.8, 0.8)
MODEL_SPACING = (1.5, 1.5, 1.5)
# nnU-Net's default plans: resampling_fn_seg_kwargs
NNUNET_SEG_KWARGS: dict[str, Any] = {
    "is_seg": True,
    "order": 1,
    "order_z": 0,
    "force_separate_z": None,
}


def synthetic_labels(shape: tuple[int, int, int], labels: int, seed: int = 0) -> np.ndarray:
    """``labels`` compact regions (nearest of random seeds) filling a body-shaped ellipsoid."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape]
    radii = [shape[0] * 0.55, shape[1] * 0.33, shape[2] * 0.45]
    body = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1
    del grid
    seeds = np.argwhere(body)[rng.choice(int(body.sum()), labels, replace=False)]
    marks = np.ones(shape, dtype=bool)
    marks[tuple(seeds.T)] = False
    nearest = ndimage.distance_transform_edt(marks, return_distances=False, return_indices=True)
    ids = np.zeros(shape, dtype=np.uint8)
    ids[tuple(seeds.T)] = np.arange(1, labels + 1, dtype=np.uint8)
    result: np.ndarray = ids[tuple(nearest)]
    result[~body] = 0
    return result


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and best seconds of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), result


def aligned_slab(model_depth: int, source_depth: int, fraction: float) -> tuple[int, int]:
    """(model slices, source slices) of a slab whose two ends coincide on both grids."""
    step = np.gcd(model_depth, source_depth)
    model_unit, source_unit = model_depth // step, source_depth // step
    units = max(1, round(fraction * step))
    return units * model_unit, units * source_unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=117)
    parser.add_argument("--fraction", type=float, default=0.5, help="z share for scipy")
    parser.add_argument("--repeat", type=int, default=5, help="torch runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    model_shape = target_shape(SOURCE_SHAPE, SOURCE_SPACING, MODEL_SPACING)
    print(f"source {SOURCE_SHAPE} at {SOURCE_SPACING} mm, model grid {model_shape} at 1.5 mm")
    print(
        f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    labels = synthetic_labels(model_shape, args.labels)
    print(f"{len(np.unique(labels)) - 1} labels on the model grid")

    model_tensor = torch.from_numpy(labels)
    full_s, full_best_s, full = timed(
        lambda: resample_labels(model_tensor, SOURCE_SHAPE), args.repeat
    )

    model_depth, source_depth = aligned_slab(model_shape[0], SOURCE_SHAPE[0], args.fraction)
    fraction = source_depth / SOURCE_SHAPE[0]
    part = "full grid" if fraction == 1 else f"slab of {source_depth}/{SOURCE_SHAPE[0]} slices"
    slab = np.ascontiguousarray(labels[:model_depth])
    slab_shape = (source_depth, *SOURCE_SHAPE[1:])
    slab_tensor = torch.from_numpy(slab)
    torch_slab_s, _, ours = timed(lambda: resample_labels(slab_tensor, slab_shape), args.repeat)

    from nnunetv2.preprocessing.resampling.default_resampling import (
        resample_data_or_seg_to_shape,
    )

    print(f"nnU-Net scipy path on the {part} ...")
    present = len(np.unique(slab)) - 1
    scipy_slab_s, _, theirs = timed(
        lambda: resample_data_or_seg_to_shape(
            slab[None], slab_shape, MODEL_SPACING, SOURCE_SPACING, **NNUNET_SEG_KWARGS
        )[0],
        1,
    )
    agreement = float(np.mean(ours.numpy() == theirs))
    same_as_full = bool(torch.equal(ours, full[:source_depth]))
    scipy_full_s = scipy_slab_s / fraction * (len(np.unique(labels)) - 1) / present
    figures = {
        "source_shape": SOURCE_SHAPE,
        "model_shape": model_shape,
        "labels": args.labels,
        "torch_threads": torch.get_num_threads(),
        "torch_full_s": full_s,
        "torch_full_best_s": full_best_s,
        "labels_in_part": present,
        "scipy_part": fraction,
        "torch_part_s": torch_slab_s,
        "scipy_part_s": scipy_slab_s,
        "scipy_full_s": scipy_full_s,
        "ratio": torch_slab_s / scipy_slab_s,
        "ratio_full": full_s / scipy_full_s,
        "voxel_agreement": agreement,
    }
    print(
        f"torch nearest label, full grid: {full_s:8.3f} s median, {full_best_s:.3f} s best "
        f"of {args.repeat}"
    )
    if fraction < 1:
        print(
            f"torch nearest label, {part}: {torch_slab_s:8.3f} s "
            f"(same labels as the full grid's slices: {same_as_full})"
        )
    print(f"nnU-Net scipy per label, {part} ({present} labels): {scipy_slab_s:8.3f} s (1 run)")
    if fraction < 1:
        print(
            f"nnU-Net scipy, full grid (extrapolated): {scipy_full_s:8.1f} s; torch / scipy "
            f"full grid {figures['ratio_full']:.4f} ({1 / figures['ratio_full']:.0f}x faster)"
        )
    print(
        f"ratio torch / scipy on the {part}: {figures['ratio']:.4f} "
        f"({1 / figures['ratio']:.0f}x faster)"
    )
    print(f"voxel agreement on the {part}: {agreement:.4%}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
