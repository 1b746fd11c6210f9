"""The model runtime (pipelines.runtime) on tiny models of every format built here.

One small MONAI UNet with random weights is saved as a MONAI checkpoint, traced to TorchScript
and exported to ONNX; a tiny nnU-Net v2 results folder (PlainConvUNet plans) is written the way
nnU-Net's trainer writes it. Each is put in a model store folder with its manifest (sha256 of
its files), as `ModelStore.install` leaves it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.networks.nets.unet import UNet
from pydantic import ValidationError

from pipelines.models import (
    InputSpec,
    ModelFormat,
    ModelIntegrityError,
    ModelManifest,
    ModelNotInstalledError,
    ModelStore,
    NetworkSpec,
    NnunetSpec,
    NormalizationSpec,
    WeightFile,
)
from pipelines.models.manifest import manifest_yaml
from pipelines.runtime import InferenceOptions, ModelRuntime, resolve_device
from pipelines.runtime.cache import ModelCache
from pipelines.runtime.normalization import normalize
from pipelines.volume import ImageVolume

LABELS = {1: "liver", 2: "spleen"}
UNET_ARGS: dict[str, Any] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}
INPUT = InputSpec(
    spatial_dims=3,
    spacing_mm=(1.5, 1.5, 2.0),
    orientation="RAS",
    normalization=NormalizationSpec(kind="ct_window", window=(-200.0, 300.0)),
    patch_size=(16, 16, 16),
)
LPS_AXIAL = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
# nnU-Net: plans spacing in nnU-Net's transposed order (transpose_forward [0, 2, 1] swaps rows
# and columns), so a source of (slice, row, column) spacing (2.0, 1.5, 1.0) is "at plans spacing"
NNUNET_TRANSPOSE = [0, 2, 1]
NNUNET_SPACING = [2.0, 1.0, 1.5]
SOURCE_AT_PLANS_SPACING = (2.0, 1.5, 1.0)
FAST = InferenceOptions(mirroring=False, tile_step_size=1.0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_model(root: Path, name: str, weights: Path, **fields: Any) -> None:
    """A store folder for ``name``: ``weights`` moved to ``<name>/weights``, a manifest beside."""
    folder = root / name
    folder.mkdir(parents=True)
    shutil.move(weights, folder / "weights")
    files = [
        WeightFile(path=p.relative_to(folder).as_posix(), sha256=sha256(p))
        for p in sorted((folder / "weights").rglob("*"))
        if p.is_file()
    ]
    manifest = ModelManifest(name=name, version="1.0", labels=LABELS, files=files, **fields)
    (folder / "manifest.yaml").write_text(manifest_yaml(manifest), encoding="utf-8")


def tiny_unet(spatial_dims: int = 3, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    args = {**UNET_ARGS, "spatial_dims": spatial_dims}
    return UNet(**args).eval()


def nnunet_plans() -> dict[str, Any]:
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [16, 16, 16],
        "median_image_size_in_voxels": [24, 32, 32],
        "spacing": NNUNET_SPACING,
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {
            "is_seg": False,
            "order": 3,
            "order_z": 0,
            "force_separate_z": None,
        },
        "resampling_fn_seg_kwargs": {
            "is_seg": True,
            "order": 1,
            "order_z": 0,
            "force_separate_z": None,
        },
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {
            "is_seg": False,
            "order": 1,
            "order_z": 0,
            "force_separate_z": None,
        },
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 2,
                "features_per_stage": [4, 8],
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
                "strides": [[1, 1, 1], [2, 2, 2]],
                "n_conv_per_stage": [1, 1],
                "n_conv_per_stage_decoder": [1],
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset990_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": NNUNET_SPACING,
        "original_median_shape_after_transp": [24, 32, 32],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": NNUNET_TRANSPOSE,
        "transpose_backward": NNUNET_TRANSPOSE,
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 400.0,
                "mean": 50.0,
                "median": 45.0,
                "min": -300.0,
                "percentile_00_5": -200.0,
                "percentile_99_5": 300.0,
                "std": 80.0,
            }
        },
    }


def write_nnunet_results(folder: Path) -> None:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    plans = nnunet_plans()
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(1)
    network = get_network_from_plans(
        architecture["network_class_name"],
        architecture["arch_kwargs"],
        architecture["_kw_requires_import"],
        1,
        3,
        allow_init=True,
        deep_supervision=False,
    )
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans), encoding="utf-8")
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1, "spleen": 2},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset), encoding="utf-8")
    torch.save(
        {
            "network_weights": network.state_dict(),
            "init_args": {
                "plans": plans,
                "configuration": "3d_fullres",
                "fold": 0,
                "dataset_json": dataset,
            },
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
        },
        folder / "fold_0" / "checkpoint_final.pth",
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    root = tmp_path_factory.mktemp("models")
    work = tmp_path_factory.mktemp("build")
    network = tiny_unet()
    example = torch.zeros((1, 1, 16, 16, 16))

    checkpoint = work / "monai" / "model.pth"
    checkpoint.parent.mkdir()
    # a DataParallel-style prefix under "state_dict", as many published checkpoints have it
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}, "epoch": 3},
        checkpoint,
    )
    write_model(
        root,
        "seg_monai",
        checkpoint.parent,
        format=ModelFormat.MONAI,
        input=INPUT,
        network=NetworkSpec(name="UNet", args=UNET_ARGS),
    )

    with warnings.catch_warnings():  # TorchScript and the TorchScript ONNX exporter are deprecated
        warnings.simplefilter("ignore")
        (work / "ts").mkdir()
        traced = torch.jit.trace(network, example)  # type: ignore[no-untyped-call]
        traced.save(str(work / "ts" / "model.pt"))
        (work / "onnx").mkdir()
        torch.onnx.export(
            network,
            (example,),
            str(work / "onnx" / "model.onnx"),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n"}, "output": {0: "n"}},
        )
    write_model(root, "seg_ts", work / "ts", format=ModelFormat.TORCHSCRIPT, input=INPUT)
    write_model(root, "seg_onnx", work / "onnx", format=ModelFormat.ONNX, input=INPUT)

    flat = tiny_unet(spatial_dims=2)
    (work / "flat").mkdir()
    torch.save(flat.state_dict(), work / "flat" / "model.pt")
    flat_input = INPUT.model_copy(update={"spatial_dims": 2, "patch_size": (16, 16, 1)})
    write_model(
        root,
        "seg_2d",
        work / "flat",
        format=ModelFormat.MONAI,
        input=flat_input,
        network=NetworkSpec(name="UNet", args={**UNET_ARGS, "spatial_dims": 2}),
    )

    write_nnunet_results(work / "nnunet")
    write_model(
        root,
        "seg_nnunet",
        work / "nnunet",
        format=ModelFormat.NNUNET_V2,
        nnunet=NnunetSpec(
            configuration="3d_fullres", trainer="nnUNetTrainer", plans="nnUNetPlans", folds=(0,)
        ),
    )
    return ModelStore(root)


def phantom(
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    shape: tuple[int, int, int] = (14, 40, 36),
) -> ImageVolume:
    """A CT-like volume: soft-tissue ellipsoids in fat, with noise; no voxel is exactly 0."""
    rng = np.random.default_rng(3)
    z, y, x = np.indices(shape).astype(float)
    centre = np.array(shape, dtype=float) / 2
    inside = ((z - centre[0]) / (shape[0] / 2.5)) ** 2 + ((y - centre[1]) / 12) ** 2 + (
        (x - centre[2]) / 9
    ) ** 2 < 1
    array = np.where(inside, 60.0, -90.0) + rng.normal(0, 25, shape) + 0.5
    array[np.abs(array) < 1] = 1.5
    return ImageVolume(array.astype(np.float32), (-20.0, -30.0, 40.0), spacing, LPS_AXIAL, "CT")


@pytest.fixture(scope="module")
def runtime(store: ModelStore) -> ModelRuntime:
    return ModelRuntime(store, device="cpu")


@pytest.fixture(scope="module")
def monai_labels(runtime: ModelRuntime) -> np.ndarray:
    labels = runtime.predict("seg_monai", phantom()).labels
    assert len(np.unique(labels)) > 1, "the test model should not give one label everywhere"
    return labels


# --- formats ------------------------------------------------------------------------------------


def test_labels_are_on_the_input_grid(monai_labels: np.ndarray) -> None:
    assert monai_labels.shape == phantom().shape
    assert monai_labels.dtype == np.dtype(np.uint8)


def test_torchscript_gives_the_monai_labels(
    runtime: ModelRuntime, monai_labels: np.ndarray
) -> None:
    np.testing.assert_array_equal(runtime.predict("seg_ts", phantom()).labels, monai_labels)


def test_onnx_gives_the_monai_labels(runtime: ModelRuntime, monai_labels: np.ndarray) -> None:
    np.testing.assert_array_equal(runtime.predict("seg_onnx", phantom()).labels, monai_labels)


def test_entropy_is_on_the_input_grid_within_0_and_1(runtime: ModelRuntime) -> None:
    entropy = runtime.predict("seg_monai", phantom(), with_entropy=True).entropy
    assert entropy is not None
    assert entropy.shape == phantom().shape
    assert entropy.dtype == np.dtype(np.float32)
    assert float(entropy.min()) >= 0.0
    assert 0.0 < float(entropy.max()) <= 1.0


def test_2d_model_runs_each_slice_on_its_own(runtime: ModelRuntime) -> None:
    volume = phantom()
    whole = runtime.predict("seg_2d", volume).labels
    one = runtime.predict("seg_2d", volume.crop((slice(5, 6), slice(None), slice(None)))).labels
    np.testing.assert_array_equal(one[0], whole[5])


def test_a_missing_extra_channel_is_rejected(runtime: ModelRuntime) -> None:
    extra = np.zeros(phantom().shape, dtype=np.float32)
    with pytest.raises(ValueError, match="takes 1 channel"):
        runtime.predict("seg_monai", phantom(), extra_channels=[extra])


# --- nnU-Net ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nnunet_reference(store: ModelStore) -> Any:
    """nnunetv2's own predictor on the same results folder."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=1.0,
        use_mirroring=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
        perform_everything_on_device=False,
    )
    folder = store.get("seg_nnunet").path("weights")
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    return predictor


def test_nnunet_at_plans_spacing_equals_predict_single_npy_array(
    runtime: ModelRuntime, nnunet_reference: Any
) -> None:
    volume = phantom(spacing=SOURCE_AT_PLANS_SPACING, shape=(12, 30, 26))
    array = np.array(volume.array)
    array[:2] = 0.0  # a zero border: nnU-Net crops it away before predicting
    array[:, :, -3:] = 0.0
    volume = volume.with_array(array)
    ours = runtime.predict("seg_nnunet", volume, FAST).labels
    theirs = nnunet_reference.predict_single_npy_array(
        array[None].astype(np.float32), {"spacing": list(SOURCE_AT_PLANS_SPACING)}
    )
    assert len(np.unique(theirs)) > 1, "the test model should not give one label everywhere"
    np.testing.assert_array_equal(ours, theirs)


def test_nnunet_labels_come_back_by_nnunets_own_nearest_resampling(
    runtime: ModelRuntime, nnunet_reference: Any
) -> None:
    """At another spacing, our labels are nnU-Net's argmax at model resolution resampled back
    with nnU-Net's own order-0 resampling (its export resamples logits instead; the geometry
    checked here is the same)."""
    from nnunetv2.preprocessing.resampling.default_resampling import (
        resample_data_or_seg_to_shape,
    )

    volume = phantom(spacing=(2.5, 0.8, 0.8))
    ours = runtime.predict("seg_nnunet", volume, FAST).labels
    predictor = nnunet_reference
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case_npy(
        volume.array[None].astype(np.float32),
        None,
        {"spacing": list(volume.spacing)},
        predictor.plans_manager,
        predictor.configuration_manager,
        predictor.dataset_json,
    )
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data))
    source_spacing = [volume.spacing[a] for a in NNUNET_TRANSPOSE]
    back = resample_data_or_seg_to_shape(
        logits.float().argmax(0).numpy()[None],
        properties["shape_before_cropping"],
        NNUNET_SPACING,
        source_spacing,
        is_seg=True,
        order=0,
        order_z=0,
        force_separate_z=None,
    )[0]
    assert len(np.unique(back)) > 1, "the test model should not give one label everywhere"
    np.testing.assert_array_equal(ours, back.transpose(NNUNET_TRANSPOSE))


# --- residency ----------------------------------------------------------------------------------


def test_two_predictions_load_the_model_once(store: ModelStore) -> None:
    runtime = ModelRuntime(store, device="cpu")
    runtime.predict("seg_ts", phantom())
    runtime.predict("seg_ts", phantom())
    assert runtime.loads() == {"seg_ts": 1}


def test_a_load_is_logged_once(store: ModelStore, caplog: pytest.LogCaptureFixture) -> None:
    runtime = ModelRuntime(store, device="cpu")
    with caplog.at_level(logging.INFO, logger="pipelines.runtime"):
        runtime.predict("seg_onnx", phantom())
        runtime.predict("seg_onnx", phantom())
    lines = [r.getMessage() for r in caplog.records if "loaded" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("model 'seg_onnx' loaded (version 1.0, onnx, cpu) in ")
    assert lines[0].endswith(" s")


def test_least_recently_used_model_is_evicted_first(store: ModelStore) -> None:
    device = torch.device("cpu")
    probe = ModelCache(store, device, budget_bytes=1 << 40)
    sizes = {}
    for name in ("seg_monai", "seg_ts"):
        with probe.use(store.get(name)) as backend:
            sizes[name] = backend.size_bytes
    cache = ModelCache(store, device, budget_bytes=sizes["seg_monai"] + sizes["seg_ts"])
    for name in ("seg_monai", "seg_ts", "seg_monai", "seg_2d"):
        with cache.use(store.get(name)):
            pass
    assert cache.resident() == ["seg_monai", "seg_2d"]


def test_the_model_in_use_is_never_evicted(store: ModelStore) -> None:
    cache = ModelCache(store, torch.device("cpu"), budget_bytes=0)
    with cache.use(store.get("seg_monai")):
        assert cache.resident() == ["seg_monai"]


def test_an_idle_model_over_budget_is_unloaded(store: ModelStore) -> None:
    cache = ModelCache(store, torch.device("cpu"), budget_bytes=0)
    with cache.use(store.get("seg_monai")):
        pass
    assert cache.resident() == []


# --- failures -----------------------------------------------------------------------------------


@pytest.fixture
def tampered_store(store: ModelStore, tmp_path: Path) -> ModelStore:
    shutil.copytree(store.root / "seg_monai", tmp_path / "seg_monai")
    with (tmp_path / "seg_monai" / "weights" / "model.pth").open("ab") as file:
        file.write(b"\0")
    return ModelStore(tmp_path)


def test_a_changed_weight_file_fails_the_load(tampered_store: ModelStore) -> None:
    runtime = ModelRuntime(tampered_store, device="cpu")
    with pytest.raises(ModelIntegrityError, match=r"sha256 mismatch: weights/model\.pth"):
        runtime.predict("seg_monai", phantom())


def test_a_missing_model_is_not_installed(runtime: ModelRuntime) -> None:
    with pytest.raises(ModelNotInstalledError, match="model 'absent' is not installed"):
        runtime.predict("absent", phantom())


def test_a_cuda_device_this_machine_lacks_is_a_value_error(store: ModelStore) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(ValueError, match=f"device '{missing}' is not available"):
        ModelRuntime(store, device=missing)


def test_auto_device_is_cpu_without_cuda() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_inference_options_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="overlapp"):
        InferenceOptions.model_validate({"overlapp": 0.5})


# --- normalisation ------------------------------------------------------------------------------


def test_ct_window_maps_the_window_to_0_1() -> None:
    spec = NormalizationSpec(kind="ct_window", window=(-100.0, 300.0))
    out = normalize(torch.tensor([-1000.0, -100.0, 100.0, 300.0, 2000.0]), spec)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_zscore_without_fixed_values_uses_the_image_statistics() -> None:
    out = normalize(torch.randn(1000) * 40 + 30, NormalizationSpec(kind="zscore"))
    assert abs(float(out.mean())) < 1e-4
    assert abs(float(out.std()) - 1) < 1e-4
