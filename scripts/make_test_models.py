"""Build the small test models in tests/models/ from the project's phantoms, reproducibly.

    .venv/bin/python scripts/make_test_models.py [--out tests/models] [--skip-cli]

Writes, in the formats the published weights come in (tests/models/README.md says more):
nnU-Net v2 results folders for AutoOrgan-style ``autoorgan_organ``, ``autoorgan_vertebrae`` and
``autoorgan_rib`` (under ``nnunet/``, an nnUNet_results folder), MONAI UNet checkpoints with a
spec.yaml for ``abdomenatlas``, ``lits_liver`` and ``lits_tumor``, and the tumor model as
TorchScript and ONNX. Training is brief, on the CPU, deterministic (fixed seeds, two threads);
each model is scored on phantoms it never saw, and the README's table is written from those
scores. ``--skip-cli`` leaves out the check that the ``nnUNetv2_predict`` command gives the
predictor's labels.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from test_models.abdomen import build_abdomen_models
from test_models.cine import build_cine_model
from test_models.readme import write_readme
from test_models.skeleton import build_skeleton_models
from test_models.spine import build_spine_models

logger = logging.getLogger("make_test_models")

REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN_SEEDS = tuple(range(8))
TEST_SEEDS = (1000, 1001)  # held out; tests/test_test_models.py uses yet another
SIZE_LIMIT = 12 * 2**20  # committed with the repository: keep them small (5 nnU-Net folders)
# What each group of models writes under the output folder (removed before it is rebuilt).
_GROUPS = {
    "skeleton": (
        "nnunet/Dataset901_AutoOrganOrgan",
        "nnunet/Dataset902_AutoOrganVertebrae",
        "nnunet/Dataset903_AutoOrganRib",
    ),
    "abdomen": (
        "abdomenatlas",
        "lits_liver",
        "lits_tumor",
        "lits_tumor_torchscript",
        "lits_tumor_onnx",
    ),
    "spine": ("nnunet/Dataset911_TotalSpineSegStep1", "nnunet/Dataset912_TotalSpineSegStep2"),
    "cine": ("cmr_lv_resunet",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPOSITORY / "tests" / "models")
    parser.add_argument("--skip-cli", action="store_true", help="do not run nnUNetv2_predict")
    parser.add_argument(
        "--iteration-scale",
        type=float,
        default=1.0,
        help="train for this fraction of the iterations (a quick trial run of the script)",
    )
    parser.add_argument(
        "--only",
        choices=sorted(_GROUPS),
        action="append",
        help="rebuild only this group of models (repeatable); the others stay as they are",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(relativeCreated)7.0f ms  %(message)s", stream=sys.stdout
    )
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)  # denormal weights make CPU convolutions crawl
    torch.use_deterministic_algorithms(True)

    out: Path = args.out
    groups = args.only or sorted(_GROUPS)
    for group in groups:
        for stale in _GROUPS[group]:
            shutil.rmtree(out / stale, ignore_errors=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    report_path = out / "report.json"
    report: dict[str, dict[str, Any]] = {}
    if args.only and report_path.is_file():  # the groups not rebuilt keep their scores
        report = json.loads(report_path.read_text("utf-8"))
    scale = args.iteration_scale
    if "skeleton" in groups:
        report |= build_skeleton_models(
            out / "nnunet", TRAIN_SEEDS, TEST_SEEDS, check_cli=not args.skip_cli, scale=scale
        )
    if "abdomen" in groups:
        report |= build_abdomen_models(out, TRAIN_SEEDS, TEST_SEEDS, scale=scale)
    if "spine" in groups:
        report |= build_spine_models(out / "nnunet", TRAIN_SEEDS, TEST_SEEDS, scale=scale)
    if "cine" in groups:
        report |= build_cine_model(out, TRAIN_SEEDS, TEST_SEEDS, scale=scale)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    report_path.write_text(json.dumps(report, indent=1, default=str) + "\n", "utf-8")

    sizes = {
        str(path.relative_to(out)): path.stat().st_size
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name not in ("README.md", "report.json")
    }
    write_readme(
        out / "README.md", report, sizes, (seconds, cpu_seconds), TRAIN_SEEDS, TEST_SEEDS, groups
    )
    logger.info("%s", json.dumps(report, indent=1, default=str))
    total = sum(sizes.values())
    logger.info(
        "built in %.0f s (%.0f s CPU in this process); %d files, %.2f MB",
        seconds,
        cpu_seconds,
        len(sizes),
        total / 2**20,
    )
    failing = [
        f"{model} {name} {value:.3f}"
        for model, result in report.items()
        for name, value in result.get("dice", {}).items()
        if value < 0.85
    ]
    for model, result in report.items():
        errors = result.get("errors", {})
        limits = {"ef_points": 2.0, "edv_percent": 5.0, "esv_percent": 5.0}
        failing += [
            f"{model} {name} {errors[name]:.2f} (limit {limit})"
            for name, limit in limits.items()
            if errors.get(name, 0.0) > limit
        ]
    for line in failing:
        logger.error("below the mark: %s", line)
    if total > SIZE_LIMIT:
        logger.error(
            "the models take %.1f MB, more than the %d MB limit", total / 2**20, SIZE_LIMIT >> 20
        )
    return 1 if failing or total > SIZE_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
