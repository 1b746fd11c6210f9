"""Series read benchmark: a 300-slice 512x512 CT series becomes one volume.

Readers, timed in the same run on the same files (interleaved, median of `--repeat` runs):
- `assemble_series` (dicom-node): headers, checks, sort, decode, float32 with rescale applied;
- SimpleITK `ImageSeriesReader` (GDCM): `GetGDCMSeriesFileNames` (its sort) + `Execute`;
  output int16 with rescale applied; GDCM decodes JPEG 2000 on all cores by itself;
- a plain pydicom loop: `dcmread` every file, sort by position along the normal,
  `pixel_array * slope + intercept` stacked as float32.

Each for the phantom series uncompressed (Explicit VR Little Endian) and JPEG 2000 lossless.

    cd /work/main && .venv/bin/python -m bench.series_read [--count 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK
from pydicom.uid import JPEG2000Lossless

sitk: Any = SimpleITK  # untyped bindings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dicom_node.series.assembly import assemble_series  # noqa: E402
from tests.support.phantom import write_ct_series  # noqa: E402

Reader = Callable[[Path], Any]  # what each library gives: an array, or a SimpleITK image
NOISE_HU = 6.0  # texture so that JPEG 2000 frames are as large as real CT ones (~150 KiB)


def write_series(folder: Path, count: int) -> dict[str, Path]:
    """The phantom series twice: uncompressed, and JPEG 2000 lossless with noise added."""
    raw, j2k = folder / "uncompressed", folder / "j2k"
    j2k.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for path in write_ct_series(raw, count):
        ds = pydicom.dcmread(path)
        noisy = ds.pixel_array + rng.normal(0.0, NOISE_HU, (ds.Rows, ds.Columns))
        ds.PixelData = np.clip(noisy, 0, 4095).astype(np.uint16).tobytes()
        ds.compress(JPEG2000Lossless)
        ds.save_as(j2k / path.name, enforce_file_format=True)
    return {"uncompressed": raw, "j2k": j2k}


def read_assembled(folder: Path) -> np.ndarray:
    return assemble_series(sorted(folder.iterdir())).volume.array


def read_simpleitk(folder: Path) -> Any:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def read_pydicom(folder: Path) -> np.ndarray:
    datasets = [pydicom.dcmread(path) for path in sorted(folder.iterdir())]
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    datasets.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, dtype=float) @ normal))
    return np.stack(
        [
            (ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).astype(
                np.float32
            )
            for ds in datasets
        ]
    )


READERS: dict[str, Reader] = {
    "assemble_series": read_assembled,
    "simpleitk": read_simpleitk,
    "pydicom_loop": read_pydicom,
}


def check_same_volume(folder: Path) -> None:
    ours = read_assembled(folder)
    for name in ("simpleitk", "pydicom_loop"):
        result = READERS[name](folder)
        if isinstance(result, sitk.Image):
            result = sitk.GetArrayFromImage(result)
        theirs = np.asarray(result, dtype=np.float32)
        if not np.array_equal(ours, theirs):
            raise SystemExit(f"{folder.name}: assemble_series and {name} disagree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="series-read-") as temp:
        print(f"writing {args.count} slices twice (uncompressed, JPEG 2000 lossless) ...")
        series = write_series(Path(temp), args.count)
        sizes = {
            name: sum(p.stat().st_size for p in folder.iterdir()) / args.count / 1024
            for name, folder in series.items()
        }
        print("  KiB per file: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))
        for folder in series.values():  # same output everywhere; also warms the page cache,
            check_same_volume(folder)  # GDCM and the decode worker processes' server
        print("  all readers give the same volume")

        timings: dict[str, dict[str, list[float]]] = {
            syntax: {name: [] for name in READERS} for syntax in series
        }
        load_before = os.getloadavg()
        for run in range(args.repeat):
            for syntax, folder in series.items():
                for name, reader in READERS.items():
                    start = time.perf_counter()
                    reader(folder)
                    timings[syntax][name].append(time.perf_counter() - start)
            print(f"  run {run + 1}/{args.repeat} done")
        load_after = os.getloadavg()

    print(f"\n{args.count} slices, median of {args.repeat} runs (seconds; ratio = reader / ours)")
    print(f"{'series':<14}{'reader':<18}{'median':>8}{'ratio':>8}   runs")
    for syntax, by_reader in timings.items():
        ours = statistics.median(by_reader["assemble_series"])
        for name, runs in by_reader.items():
            median = statistics.median(runs)
            listed = " ".join(f"{value:.2f}" for value in runs)
            print(f"{syntax:<14}{name:<18}{median:>8.2f}{median / ours:>8.2f}   {listed}")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} CPUs; above ~0.5 before means something else was running)"
    )
    if args.json:
        result: dict[str, Any] = {
            "count": args.count,
            "timings": timings,
            "load": [load_before, load_after],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
