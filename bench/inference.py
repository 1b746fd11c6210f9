"""Inference benchmark: the node's resident nnU-Net path against the `nnUNetv2_predict` CLI.

(a) `cli`: one nnU-Net v2 test model (tests/models/nnunet/..., or `--model FOLDER`), installed
    into a temporary models_dir with `ModelStore.install`, run on the same 3 phantom CTs
    (`dicom_node.phantom_skeleton.make_skeleton`, else `dicom_node.phantom.make_torso`) by
    - the node: `ModelRuntime.predict` with the model resident (loaded once by a warm-up call on
      the first input, which is reported apart), in memory, no files;
    - the CLI: one `nnUNetv2_predict` process per series (what a node that shells out does:
      start, load, read NIfTI, predict, write NIfTI), `nnUNet_results` pointing at a temporary
      results root that links the model's folder, inputs written as NIfTI with SimpleITK;
      also once for all inputs in one process (load shared), reported as seconds per series.
    Same settings on both: folds and checkpoint of the manifest, `-step_size` = tile_step_size,
    `--disable_tta` = mirroring False, same device, torch threads = CPU count (as the CLI
    sets), `-npp 1 -nps 1`. Per series: seconds each way, the ratio node/CLI (target <= 0.5),
    and how many voxels of the two label maps differ (0 = voxel-identical).
(b) `large`: a TotalSegmentator-size nnU-Net (3d_fullres PlainConvUNet, 6 stages of 32..320
    features, 105 outputs, patch 128^3 at 1.5 mm; plans.json, dataset.json and random weights
    written to a temporary results folder, labels named after the first 104 structures of
    pipelines/codes.py) on a synthetic 512x512x300 torso CT at 0.8x0.8x1.5 mm through
    `ModelRuntime.predict` (mirroring off, step 0.5): load seconds and seconds per series.
    Speed does not depend on weight values. `--size F` scales the CT's matrix (same spacing)
    for slow CPUs; the table says what was run.

    cd /work/main && .venv/bin/python -m bench.inference [--part cli|large|both]
        [--model RESULTS_FOLDER] [--size 0.5] [--device auto] [--mirroring] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

from pipelines.codes import SEGMENT_CODES  # noqa: E402
from pipelines.models import ModelStore  # noqa: E402
from pipelines.runtime import InferenceOptions, ModelRuntime  # noqa: E402
from pipelines.volume import ImageVolume  # noqa: E402

PREDICT_CLI = ROOT / ".venv" / "bin" / "nnUNetv2_predict"
TEST_MODELS = ROOT / "tests" / "models" / "nnunet"
SPEC_NAMES = ("spec.yaml", "spec.yml")
LARGE_SHAPE = (300, 512, 512)  # slices, rows, columns
LARGE_SPACING = (1.5, 0.8, 0.8)  # mm
LARGE_OUTPUTS = 105  # background + 104 structures, as TotalSegmentator's `total` task


# --- inputs ----------------------------------------------------------------------------------


def phantom_inputs(count: int) -> tuple[str, list[ImageVolume]]:
    """`count` phantom CTs with different seeds, and which phantom made them."""
    try:
        from dicom_node.phantom_skeleton import make_skeleton
    except ImportError:
        from dicom_node.phantom import make_torso

        return "phantom.make_torso", [make_torso(seed=seed)[0] for seed in range(1, count + 1)]
    return "phantom_skeleton.make_skeleton", [
        make_skeleton(seed=seed)[0] for seed in range(1, count + 1)
    ]


def write_nifti(volume: ImageVolume, path: Path) -> None:
    """The volume as NIfTI with its geometry (SimpleITK: numpy [slice, row, column] = (z, y, x),
    LPS in memory, RAS in the file)."""
    image: Any = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(tuple(reversed(volume.spacing)))
    image.SetOrigin(volume.origin)
    image.SetDirection(np.column_stack(volume.direction[::-1]).ravel().tolist())
    sitk.WriteImage(image, str(path))


def read_labels(path: Path) -> npt.NDArray[Any]:
    labels: npt.NDArray[Any] = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return labels


# --- (a) the resident node against the CLI -----------------------------------------------


def find_test_model() -> Path:
    """The first nnU-Net results folder (Trainer__Plans__Configuration) under tests/models."""
    found = sorted(path.parent for path in TEST_MODELS.glob("**/plans.json"))
    if not found:
        raise SystemExit(
            f"no nnU-Net results folder under {TEST_MODELS}: build the test models first "
            "(scripts/make_test_models.py) or give --model"
        )
    return found[0]


def find_spec(results: Path) -> Path | None:
    for folder in (results, results.parent, results.parent.parent):
        for name in SPEC_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def install(store: ModelStore, results: Path, name: str) -> Any:
    spec = find_spec(results)
    return store.install(results, name, spec=spec)


def predict_cli(
    results_root: Path,
    dataset: str,
    model: Any,
    cases: Sequence[Path],
    output: Path,
    options: InferenceOptions,
    device: torch.device,
) -> float:
    """Seconds of one `nnUNetv2_predict` process on the NIfTI `cases` (one channel each)."""
    nnunet = model.manifest.nnunet
    with tempfile.TemporaryDirectory(prefix="cli-in-") as scratch:
        inputs = Path(scratch)
        for case in cases:
            (inputs / case.name).symlink_to(case)
        command = [
            str(PREDICT_CLI), "-i", str(inputs), "-o", str(output), "-d", dataset,
            "-c", nnunet.configuration, "-tr", nnunet.trainer, "-p", nnunet.plans,
            "-f", *[str(fold) for fold in nnunet.folds], "-chk", nnunet.checkpoint,
            "-step_size", str(options.tile_step_size), "-device", device.type,
            "-npp", "1", "-nps", "1", "--disable_progress_bar",
        ]  # fmt: skip
        if not options.mirroring:
            command.append("--disable_tta")
        environment = {
            **os.environ,
            "nnUNet_results": str(results_root),
            "nnUNet_raw": str(results_root / "raw"),
            "nnUNet_preprocessed": str(results_root / "preprocessed"),
        }
        started = time.perf_counter()
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"nnUNetv2_predict failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def bench_cli(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results = args.model or find_test_model()
    store = ModelStore(work / "models")
    model = install(store, results, "bench_nnunet")
    runtime = ModelRuntime(store, device=args.device)
    options = InferenceOptions(tile_step_size=args.step_size, mirroring=args.mirroring)
    phantom, volumes = phantom_inputs(args.inputs)

    # nnU-Net finds a model as $nnUNet_results/DatasetNNN_Name/Trainer__Plans__Configuration.
    results_root = work / "nnunet_results"
    dataset = "Dataset999_Bench"
    (results_root / dataset).mkdir(parents=True)
    nnunet = model.manifest.nnunet
    installed_results = model.path(nnunet.results_folder)
    linked = f"{nnunet.trainer}__{nnunet.plans}__{nnunet.configuration}"
    (results_root / dataset / linked).symlink_to(installed_results)
    ending = json.loads((installed_results / "dataset.json").read_text()).get(
        "file_ending", ".nii.gz"
    )
    cases = []
    for index, volume in enumerate(volumes):
        case = work / "cases" / f"case{index:02d}_0000{ending}"
        case.parent.mkdir(exist_ok=True)
        write_nifti(volume, case)
        cases.append(case)

    warm_started = time.perf_counter()
    runtime.predict(model.name, volumes[0], options)
    first_call = time.perf_counter() - warm_started

    rows: list[dict[str, Any]] = []
    for index, (volume, case) in enumerate(zip(volumes, cases, strict=True)):
        started = time.perf_counter()
        prediction = runtime.predict(model.name, volume, options)
        node_seconds = time.perf_counter() - started
        output = work / f"cli_out_{index}"
        cli_seconds = predict_cli(
            results_root, dataset, model, [case], output, options, runtime.device
        )
        cli_labels = read_labels(output / case.name.replace(f"_0000{ending}", ending))
        differing = int(np.count_nonzero(cli_labels != prediction.labels))
        rows.append(
            {
                "series": index,
                "shape": list(volume.shape),
                "node_s": node_seconds,
                "node_stages_s": prediction.timings,
                "cli_s": cli_seconds,
                "ratio": node_seconds / cli_seconds,
                "differing_voxels": differing,
                "voxels": int(prediction.labels.size),
            }
        )
    batch_seconds = predict_cli(
        results_root, dataset, model, cases, work / "cli_out_all", options, runtime.device
    )
    node_mean = statistics.mean(row["node_s"] for row in rows)
    cli_mean = statistics.mean(row["cli_s"] for row in rows)
    return {
        "model": str(results),
        "inputs": phantom,
        "device": str(runtime.device),
        "options": options.model_dump(),
        "first_call_with_load_s": first_call,
        "loads": runtime.loads(),
        "series": rows,
        "node_mean_s": node_mean,
        "cli_mean_s": cli_mean,
        "ratio": node_mean / cli_mean,
        "cli_one_process_per_series_s": batch_seconds / len(cases),
        "ratio_to_cli_one_process": node_mean / (batch_seconds / len(cases)),
        "voxel_identical": all(row["differing_voxels"] == 0 for row in rows),
    }


# --- (b) a TotalSegmentator-size network -------------------------------------------------


def large_plans(outputs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """plans.json and dataset.json of a 3d_fullres PlainConvUNet like TotalSegmentator's:
    6 stages of 32, 64, 128, 256, 320, 320 features, 3x3x3 convolutions, stride 2 from stage
    2, instance norm, leaky ReLU; patch 128^3 at 1.5 mm; CT normalisation."""
    names = sorted(SEGMENT_CODES)[: outputs - 1]
    if len(names) < outputs - 1:
        raise SystemExit(f"pipelines/codes.py has {len(names)} structures, {outputs - 1} needed")
    resampling = "resample_data_or_seg_to_shape"

    def resampling_kwargs(is_seg: bool, order: int) -> dict[str, Any]:
        return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}

    architecture = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 6,
            "features_per_stage": [32, 64, 128, 256, 320, 320],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
            "n_conv_per_stage": [2] * 6,
            "n_conv_per_stage_decoder": [2] * 5,
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [128, 128, 128],
        "median_image_size_in_voxels": [300, 273, 273],
        "spacing": [1.5, 1.5, 1.5],
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": resampling,
        "resampling_fn_seg": resampling,
        "resampling_fn_data_kwargs": resampling_kwargs(False, 3),
        "resampling_fn_seg_kwargs": resampling_kwargs(True, 1),
        "resampling_fn_probabilities": resampling,
        "resampling_fn_probabilities_kwargs": resampling_kwargs(False, 1),
        "architecture": architecture,
        "batch_dice": False,
    }  # fmt: skip
    plans = {
        "dataset_name": "Dataset990_TotalSize",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.5, 1.5, 1.5],
        "original_median_shape_after_transp": [300, 273, 273],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 3071.0, "mean": 98.0, "median": 85.0, "min": -1024.0,
                "percentile_00_5": -958.0, "percentile_99_5": 1402.0, "std": 305.0,
            }
        },
    }  # fmt: skip
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{name: value for value, name in enumerate(names, 1)}},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    return plans, dataset


def write_large_model(folder: Path, outputs: int) -> tuple[Path, int]:
    """A results folder with random weights (what nnUNetPredictor loads), and the network's
    parameter count."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    plans, dataset = large_plans(outputs)
    results = folder / "Dataset990_TotalSize" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (results / "fold_0").mkdir(parents=True)
    (results / "plans.json").write_text(json.dumps(plans, indent=2))
    (results / "dataset.json").write_text(json.dumps(dataset, indent=2))
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(0)
    network = get_network_from_plans(
        architecture["network_class_name"],
        architecture["arch_kwargs"],
        architecture["_kw_requires_import"],
        1,
        outputs,
        allow_init=True,
        deep_supervision=False,
    )
    checkpoint = {
        "network_weights": network.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {
            "plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
        },
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }  # fmt: skip
    torch.save(checkpoint, results / "fold_0" / "checkpoint_final.pth")
    # Counted on the module: its state_dict lists the encoder twice (the decoder refers to it).
    return results, sum(parameter.numel() for parameter in network.parameters())


def large_volume(size: float) -> ImageVolume:
    """The torso phantom at 0.8x0.8x1.5 mm, 512x512x300 voxels times `size` per axis."""
    from dicom_node.phantom import make_torso

    shape = tuple(max(16, round(n * size)) for n in LARGE_SHAPE)
    volume, _ = make_torso((shape[0], shape[1], shape[2]), LARGE_SPACING, seed=7)
    return volume


def bench_large(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results, parameters = write_large_model(work / "large_results", LARGE_OUTPUTS)
    store = ModelStore(work / "large_models")
    model = store.install(results, "bench_total_size")
    runtime = ModelRuntime(store, device=args.device, memory_budget_mb=8192)
    options = InferenceOptions(tile_step_size=0.5, mirroring=False)
    volume = large_volume(args.size)
    runs = []
    for _ in range(args.repeat + 1):  # the first call also loads the model
        started = time.perf_counter()
        prediction = runtime.predict(model.name, volume, options)
        runs.append({"seconds": time.perf_counter() - started, **prediction.timings})
    resident = [run["seconds"] for run in runs[1:]]
    return {
        "network": "PlainConvUNet 6 stages 32..320, 3d_fullres, patch 128^3 at 1.5 mm",
        "outputs": LARGE_OUTPUTS,
        "parameters": parameters,
        "ct_shape": list(volume.shape),
        "ct_spacing_mm": list(volume.spacing),
        "size_factor": args.size,
        "device": str(runtime.device),
        "options": options.model_dump(),
        "first_call_with_load_s": runs[0]["seconds"],
        "resident_s": statistics.mean(resident),
        "runs": runs,
    }


# --- report ----------------------------------------------------------------------------------


def print_cli(figures: dict[str, Any]) -> None:
    options = figures["options"]
    print(f"(a) resident node vs nnUNetv2_predict: {figures['model']}")
    print(
        f"    inputs {figures['inputs']}, device {figures['device']}, step "
        f"{options['tile_step_size']}, mirroring {options['mirroring']}; first node call "
        f"(with load) {figures['first_call_with_load_s']:.2f} s, loads {figures['loads']}"
    )
    print(
        f"    {'series':>6} {'shape':>14} {'node s':>8} {'CLI s':>8} {'ratio':>6} {'differing':>10}"
    )
    for row in figures["series"]:
        shape = "x".join(str(n) for n in row["shape"])
        print(
            f"    {row['series']:>6} {shape:>14} {row['node_s']:8.2f} {row['cli_s']:8.2f} "
            f"{row['ratio']:6.2f} {row['differing_voxels']:>10}"
        )
    print(
        f"    {'mean':>6} {'':>14} {figures['node_mean_s']:8.2f} {figures['cli_mean_s']:8.2f} "
        f"{figures['ratio']:6.2f}   target <= 0.50; voxel-identical: {figures['voxel_identical']}"
    )
    print(
        f"    CLI with all inputs in one process: {figures['cli_one_process_per_series_s']:.2f} s"
        f" per series (node ratio {figures['ratio_to_cli_one_process']:.2f})"
    )


def print_large(figures: dict[str, Any]) -> None:
    shape = "x".join(str(n) for n in figures["ct_shape"])
    spacing = "x".join(f"{s:g}" for s in figures["ct_spacing_mm"])
    print(f"(b) {figures['network']}, {figures['outputs']} outputs")
    print(f"    {figures['parameters']:,} parameters")
    print(
        f"    CT {shape} voxels at {spacing} mm (size factor {figures['size_factor']:g}), "
        f"device {figures['device']}, mirroring off, step 0.5"
    )
    print(f"    first call (with load) {figures['first_call_with_load_s']:.1f} s")
    print(f"    resident, per series   {figures['resident_s']:.1f} s")
    last = figures["runs"][-1]
    stages = ", ".join(
        f"{key} {value:.1f}" for key, value in last.items() if key not in {"seconds", "total"}
    )
    print(f"    last run by stage (s): {stages}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--part", choices=["cli", "large", "both"], default="both")
    parser.add_argument("--model", type=Path, help="nnU-Net results folder for (a)")
    parser.add_argument("--inputs", type=int, default=3, help="phantom CTs for (a)")
    parser.add_argument("--step-size", type=float, default=0.5, help="tile step for (a)")
    parser.add_argument("--mirroring", action="store_true", help="test-time mirroring in (a)")
    parser.add_argument("--size", type=float, default=1.0, help="CT matrix factor for (b)")
    parser.add_argument("--repeat", type=int, default=1, help="resident runs in (b)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--json", type=Path, dest="json_out", help="write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(os.cpu_count() or 1)  # as nnUNetv2_predict does on the CPU
    figures: dict[str, Any] = {"cpu_count": os.cpu_count(), "torch": torch.__version__}
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        if args.part in ("cli", "both"):
            figures["cli"] = bench_cli(args, work)
            print_cli(figures["cli"])
        if args.part in ("large", "both"):
            figures["large"] = bench_large(args, work)
            print_large(figures["large"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
