"""tests/models/README.md, written by the build from what it measured."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["write_readme"]

# The fixed part of the README; the build appends what it measured.
_INTRO = Path(__file__).with_name("readme_intro.md")


def write_readme(
    path: Path,
    report: dict[str, dict[str, Any]],
    sizes: dict[str, int],
    seconds: tuple[float, float],
    train_seeds: Sequence[int],
    test_seeds: Sequence[int],
    groups: Sequence[str],
) -> None:
    lines = [_INTRO.read_text(encoding="utf-8"), "## Built", ""]
    seeds = f"{train_seeds[0]}-{train_seeds[-1]}"
    held_out = ", ".join(map(str, test_seeds))
    lines.append(
        f"The last build ({', '.join(groups)}) took {seconds[0]:.0f} s ({seconds[1]:.0f} s of"
        f" CPU in the script's process, the nnUNetv2_predict runs not counted) on"
        f" {platform.machine()}"
        f" ({torch.get_num_threads()} threads, torch {torch.__version__}); trained on phantom"
        f" seeds {seeds}, scored on seeds {held_out} (the worst Dice of those, own inference;"
        f" nnU-Net: nnUNetPredictor). Total size {sum(sizes.values()) / 2**20:.2f} MB."
    )
    lines += ["", "| model | Dice per structure | notes |", "|---|---|---|"]
    for model, result in report.items():
        dice = ", ".join(f"{name} {value:.3f}" for name, value in result.get("dice", {}).items())
        notes = []
        if "cli" in result:
            notes.append(f"nnUNetv2_predict vs predictor: {result['cli']}")
        if "tumor_counts" in result:
            counts = "; ".join(f"{found} of {true}" for found, true in result["tumor_counts"])
            notes.append(f"tumors found: {counts}")
        if "errors" in result:
            errors = result["errors"]
            notes.append(
                f"worst error: EF {errors['ef_points']:.2f} points, EDV"
                f" {errors['edv_percent']:.2f} %, ESV {errors['esv_percent']:.2f} %, mass"
                f" {errors['mass_percent']:.2f} %; ED/ES phases right: {result['ed_es_right']}"
            )
        if "anchors" in result:
            anchors = "; ".join(", ".join(found) or "none" for found in result["anchors"])
            notes.append(f"levels anchored by: {anchors}")
        if "entropy" in result:
            for kind, values in result["entropy"].items():
                spleen = values.get("spleen", 0.0)
                others = max(v for name, v in values.items() if name != "spleen")
                notes.append(f"{kind} phantom entropy: spleen {spleen:.2f}, others <= {others:.2f}")
        lines.append(f"| {model} | {dice} | {'; '.join(notes)} |")
    lines += ["", "| file | bytes |", "|---|---|"]
    lines += [f"| `{name}` | {size} |" for name, size in sizes.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
