"""Cine benchmark: assembly + inference + measurement of a short-axis cine, stage by stage.

A phantom cine (`dicom_node.phantom_cine`, default 10 slices x 25 phases of 256 x 256 at
1.4 mm, written as single-frame MR files) goes through what a cmr_lv job does:

- `assemble`: `dicom_node.series.cine.assemble_cine` on the files (headers, grouping, phase
  order, pixel decode), against a baseline in the same run: `pydicom.dcmread` of every file,
  sorted by (slice position, trigger time) and stacked (what a script would do);
- `inference`: `ModelRuntime.predict` of the 2D model on every phase (the test model
  tests/models/cmr_lv_resunet, or `--model FOLDER` with its spec.yaml), resident (loaded by a
  warm-up call reported apart);
- `measure`: volumes per phase, ED/ES, EDV/ESV/SV/EF/mass, the ED-over-ES label map
  (`CmrLvPipeline.run_cine` minus its inference: the whole run minus the summed predict times).

Speed does not depend on the weights. Prints a table and, with `--json`, writes the figures.

    cd /work/main && .venv/bin/python -m bench.cine [--slices 10] [--phases 25] [--matrix 256]
        [--repeat 3] [--model FOLDER] [--sw-batch-size 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import torch  # noqa: E402

from dicom_node.phantom_cine import make_cine, write_cine  # noqa: E402
from dicom_node.series.cine import assemble_cine  # noqa: E402
from pipelines import SeriesFacts  # noqa: E402
from pipelines.cmr_lv import CmrLvPipeline  # noqa: E402
from pipelines.models import ModelStore  # noqa: E402
from pipelines.runtime import ModelRuntime  # noqa: E402

TEST_MODEL = ROOT / "tests" / "models" / "cmr_lv_resunet"


def baseline_assembly(paths: list[Path]) -> np.ndarray:
    """Every file read whole by pydicom, sorted by slice position then trigger time, stacked."""
    datasets = [pydicom.dcmread(path) for path in paths]
    normal = np.cross(
        np.asarray(datasets[0].ImageOrientationPatient[:3], dtype=float),
        np.asarray(datasets[0].ImageOrientationPatient[3:], dtype=float),
    )

    def key(dataset: Any) -> tuple[float, float]:
        height = float(np.asarray(dataset.ImagePositionPatient, dtype=float) @ normal)
        return round(height, 2), float(dataset.TriggerTime)

    datasets.sort(key=key)
    return np.stack([d.pixel_array.astype(np.float32) for d in datasets])


class TimedRuntime:
    """The runtime seen by the pipeline, adding up the seconds its predict calls take."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.seconds = 0.0

    @property
    def store(self) -> ModelStore:
        return self.runtime.store

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.runtime.predict(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--phases", type=int, default=25)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, default=TEST_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--sw-batch-size", type=int, default=1, help="cmr_lv inference.sw_batch_size"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        phantom = make_cine(
            seed=7,
            phases=args.phases,
            slices=args.slices,
            matrix=args.matrix,
            pixel_mm=350.0 / args.matrix,
        )
        paths = write_cine(root / "series", phantom)
        store = ModelStore(root / "models")
        spec = args.model / "spec.yaml"
        weights = next(p for p in args.model.iterdir() if p.suffix in (".onnx", ".pt", ".pth"))
        store.install(weights, "cmr_lv_resunet", spec=spec if spec.is_file() else None)
        runtime = ModelRuntime(store, device=args.device)
        timed = TimedRuntime(runtime)
        pipeline = CmrLvPipeline(
            runtime=timed,  # type: ignore[arg-type]
            inference={"sw_batch_size": args.sw_batch_size},
        )
        facts = SeriesFacts(modality="MR")

        started = time.perf_counter()
        runtime.predict("cmr_lv_resunet", phantom.cine.phases[0], pipeline.options.inference)
        warm_up = time.perf_counter() - started

        runs: dict[str, list[float]] = {
            "assemble": [],
            "assemble_baseline": [],
            "inference": [],
            "measure": [],
        }
        ef = 0.0
        for _ in range(args.repeat):
            started = time.perf_counter()
            baseline_assembly(paths)
            runs["assemble_baseline"].append(time.perf_counter() - started)
            started = time.perf_counter()
            assembled = assemble_cine(paths)
            runs["assemble"].append(time.perf_counter() - started)

            timed.seconds = 0.0
            started = time.perf_counter()
            result = pipeline.run_cine(assembled.cine, facts)
            whole = time.perf_counter() - started
            runs["inference"].append(timed.seconds)
            runs["measure"].append(whole - timed.seconds)
            ef = next(m.value for m in result.result.measurements if m.name.value == "8811-2")

    medians = {stage: statistics.median(values) for stage, values in runs.items()}
    total = medians["assemble"] + medians["inference"] + medians["measure"]
    figures = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {args.device}",
        "sw_batch_size": args.sw_batch_size,
        "cine": f"{args.slices} slices x {args.phases} phases of {args.matrix}^2",
        "files": len(paths),
        "warm_up_s": round(warm_up, 3),
        "median_s": {stage: round(value, 3) for stage, value in medians.items()},
        "total_s": round(total, 3),
        "assemble_vs_baseline": round(medians["assemble"] / medians["assemble_baseline"], 3),
        "ef_percent": round(ef, 2),
        "repeat": args.repeat,
    }
    print(
        f"cine: {figures['cine']} ({figures['files']} files); {figures['machine']}; "
        f"sw_batch_size {args.sw_batch_size}"
    )
    print(f"model warm-up (load + first phase): {warm_up:.3f} s")
    for stage in ("assemble", "inference", "measure"):
        print(f"  {stage:<10} {medians[stage]:8.3f} s  ({100 * medians[stage] / total:4.1f} %)")
    print(f"  {'total':<10} {total:8.3f} s")
    print(
        f"assembly vs pydicom read-all-and-stack baseline: {medians['assemble']:.3f} s vs "
        f"{medians['assemble_baseline']:.3f} s ({figures['assemble_vs_baseline']}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
