"""The test phantoms' truths, and the committed test models (tests/models/, built by
scripts/make_test_models.py): each loads with its own format's loader and segments a phantom
it never saw (seed 2000) with simple inference of our own."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
import yaml
from scipy import ndimage

from dicom_node.phantom import write_series
from dicom_node.phantom_abdomen import ABDOMEN_LABELS, make_abdomen, tumor_count
from dicom_node.phantom_skeleton import ORGAN_LABELS, RIB_LABELS, VERTEBRA_LABELS, make_skeleton
from dicom_node.series.assembly import assemble_series
from pipelines import ImageVolume

MODELS = Path(__file__).parent / "models"
SEED = 2000  # neither a training seed nor one the build scored
ORGANS = {name: value for name, value in ABDOMEN_LABELS.items() if name != "liver_tumor"}
LIVER, TUMOR = ABDOMEN_LABELS["liver"], ABDOMEN_LABELS["liver_tumor"]
TASK_LABELS = {"organ": ORGAN_LABELS, "vertebrae": VERTEBRA_LABELS, "rib": RIB_LABELS}
DATASETS = {
    "organ": "Dataset901_AutoOrganOrgan",
    "vertebrae": "Dataset902_AutoOrganVertebrae",
    "rib": "Dataset903_AutoOrganRib",
}
TUMOR_FOLDERS = {
    "monai": "lits_tumor",
    "torchscript": "lits_tumor_torchscript",
    "onnx": "lits_tumor_onnx",
}

Abdomen = tuple[ImageVolume, npt.NDArray[np.uint8]]
Skeleton = tuple[ImageVolume, dict[str, npt.NDArray[np.uint8]]]
Forward = Callable[[torch.Tensor], torch.Tensor]


def dice(prediction: npt.NDArray[Any], truth: npt.NDArray[Any], value: int) -> float:
    predicted, expected = prediction == value, truth == value
    total = int(predicted.sum() + expected.sum())
    return 1.0 if total == 0 else 2.0 * int((predicted & expected).sum()) / total


def results_folder(task: str) -> Path:
    return MODELS / "nnunet" / DATASETS[task] / "nnUNetTrainer__nnUNetPlans__3d_fullres"


def model_layout(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A phantom array ([z, y, x], stored LPS) as the MONAI-style models take it: [x, y, z] RAS."""
    return np.ascontiguousarray(array.transpose(2, 1, 0)[::-1, ::-1, :])


def phantom_layout(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.ascontiguousarray(array[::-1, ::-1, :].transpose(2, 1, 0))


def model_input(volume: ImageVolume) -> npt.NDArray[np.float32]:
    """HU windowed -175..250 to [0, 1], in the models' layout."""
    scaled = (np.clip(volume.array.astype(np.float32), -175.0, 250.0) + 175.0) / 425.0
    return model_layout(scaled)


def spec_of(folder: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((MODELS / folder / "spec.yaml").read_text("utf-8"))
    return spec


def softmax(forward: Forward, image: npt.NDArray[np.float32], folder: str) -> torch.Tensor:
    """Class probabilities (K, x, y, z) by Gaussian-weighted sliding windows of the spec's patch."""
    from monai.inferers.utils import sliding_window_inference

    patch = spec_of(folder)["input"]["patch_size"]
    with torch.no_grad():
        logits = sliding_window_inference(
            torch.from_numpy(image)[None, None], patch, 2, forward, overlap=0.25, mode="gaussian"
        )
    assert isinstance(logits, torch.Tensor)
    return torch.softmax(logits[0], 0)


def monai_network(folder: str) -> torch.nn.Module:
    """The UNet of a model folder's spec with the checkpoint's weights ("module." stripped)."""
    from monai.networks import nets

    network_spec = spec_of(folder)["network"]
    network: torch.nn.Module = getattr(nets, network_spec["name"])(**network_spec["args"])
    checkpoint = torch.load(MODELS / folder / "model.pth", map_location="cpu", weights_only=True)
    key = network_spec.get("state_dict_key")
    state = checkpoint[key] if key else checkpoint
    network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return network.eval()


def tumor_forward(kind: str) -> Forward:
    folder = MODELS / TUMOR_FOLDERS[kind]
    if kind == "monai":
        return monai_network(TUMOR_FOLDERS[kind])
    if kind == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit says it is deprecated
            scripted: Forward = torch.jit.load(str(folder / "model.pt"))  # type: ignore[no-untyped-call]
        return scripted
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return lambda batch: torch.from_numpy(session.run(None, {"image": batch.numpy()})[0])


@pytest.fixture(scope="module")
def abdomen() -> Abdomen:
    return make_abdomen(seed=SEED)


@pytest.fixture(scope="module")
def skeleton() -> Skeleton:
    return make_skeleton(seed=SEED)


def test_abdomen_truth_holds_every_label(abdomen: Abdomen) -> None:
    _, truth = abdomen
    assert set(np.unique(truth)) == {0, *ABDOMEN_LABELS.values()}


def test_tumors_lie_inside_the_liver(abdomen: Abdomen) -> None:
    _, truth = abdomen
    around = ndimage.binary_dilation(truth == TUMOR)
    assert set(np.unique(truth[around])) == {LIVER, TUMOR}


def test_tumor_count_varies_between_one_and_four() -> None:
    counts = {tumor_count(make_abdomen(seed=seed)[1]) for seed in range(8)}
    assert len(counts) > 1
    assert counts <= {1, 2, 3, 4}


def test_abdomen_reads_back_through_the_node_voxel_for_voxel(
    abdomen: Abdomen, tmp_path: Path
) -> None:
    volume, _ = abdomen
    assembled = assemble_series(write_series(tmp_path, volume), decode_workers=1).volume
    assert np.array_equal(assembled.array, volume.array)
    assert (assembled.direction, assembled.spacing) == (volume.direction, volume.spacing)
    assert np.allclose(assembled.origin, volume.origin)


def test_ambiguous_changes_only_that_organ(abdomen: Abdomen) -> None:
    volume, truth = abdomen
    ambiguous, same_truth = make_abdomen(seed=SEED, ambiguous="spleen")
    changed = ambiguous.array != volume.array
    assert np.array_equal(same_truth, truth)
    assert set(np.unique(truth[changed])) == {ABDOMEN_LABELS["spleen"]}


def test_ambiguous_must_name_an_organ() -> None:
    with pytest.raises(ValueError, match="ambiguous names one of"):
        make_abdomen((8, 16, 16), (12.0, 18.0, 18.0), ambiguous="brain")


@pytest.mark.parametrize("task", sorted(DATASETS))
def test_skeleton_labels_are_the_task_models_values(task: str) -> None:
    dataset = json.loads((results_folder(task) / "dataset.json").read_text("utf-8"))
    drawn = TASK_LABELS[task]
    assert {name: dataset["labels"][name] for name in drawn} == drawn


def test_skeleton_truths_hold_every_drawn_structure(skeleton: Skeleton) -> None:
    _, truths = skeleton
    assert {task: set(np.unique(truth)) for task, truth in truths.items()} == {
        task: {0, *labels.values()} for task, labels in TASK_LABELS.items()
    }


def test_each_rib_touches_its_vertebra(skeleton: Skeleton) -> None:
    _, truths = skeleton
    touching = {}
    for name, value in RIB_LABELS.items():
        vertebra = VERTEBRA_LABELS["vertebrae_T" + name.rsplit("_", 1)[1]]
        around = ndimage.binary_dilation(truths["rib"] == value)
        touching[name] = bool(np.any(truths["vertebrae"][around] == vertebra))
    assert all(touching.values()), touching


def test_ribs_are_three_voxels_thick(skeleton: Skeleton) -> None:
    _, truths = skeleton
    cross = ndimage.generate_binary_structure(3, 1)
    thick = {
        name: bool(ndimage.binary_erosion(truths["rib"] == value, cross).any())
        for name, value in RIB_LABELS.items()
    }
    assert all(thick.values()), thick


@pytest.mark.parametrize("task", ["organ", "vertebrae"])
def test_nnunet_folder_segments_a_new_phantom(task: str, skeleton: Skeleton) -> None:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    volume, truths = skeleton
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(results_folder(task)), use_folds=(0,))
    labels = predictor.predict_single_npy_array(
        volume.array[np.newaxis].astype(np.float32), {"spacing": list(volume.spacing)}
    )
    scores = {name: dice(labels, truths[task], value) for name, value in TASK_LABELS[task].items()}
    assert min(scores.values()) >= 0.8, scores


def test_monai_checkpoint_segments_a_new_phantom(abdomen: Abdomen) -> None:
    volume, truth = abdomen
    probabilities = softmax(monai_network("abdomenatlas"), model_input(volume), "abdomenatlas")
    labels = phantom_layout(probabilities.argmax(0).numpy())
    expected = np.where(truth == TUMOR, LIVER, truth)  # AbdomenAtlas: tumors are liver
    scores = {name: dice(labels, expected, value) for name, value in ORGANS.items()}
    assert min(scores.values()) >= 0.8, scores


def test_monai_model_is_uncertain_in_the_ambiguous_spleen() -> None:
    volume, truth = make_abdomen(seed=SEED, ambiguous="spleen")
    probabilities = softmax(monai_network("abdomenatlas"), model_input(volume), "abdomenatlas")
    logs = torch.log(probabilities.clamp_min(1e-12))
    entropy = phantom_layout((-(probabilities * logs).sum(0) / np.log(10)).numpy())
    mean = {name: float(entropy[truth == value].mean()) for name, value in ORGANS.items()}
    others = max(value for name, value in mean.items() if name != "spleen")
    assert mean["spleen"] > others + 0.1, mean


def test_liver_model_segments_a_new_phantom(abdomen: Abdomen) -> None:
    volume, truth = abdomen
    probabilities = softmax(monai_network("lits_liver"), model_input(volume), "lits_liver")
    labels = phantom_layout(probabilities.argmax(0).numpy())
    assert dice(labels, np.isin(truth, (LIVER, TUMOR)), 1) >= 0.8


@pytest.mark.parametrize("kind", sorted(TUMOR_FOLDERS))
def test_tumor_model_finds_the_tumors_in_the_liver_box(kind: str, abdomen: Abdomen) -> None:
    volume, truth = abdomen
    image, expected = model_input(volume), model_layout(truth)
    (found,) = ndimage.find_objects(np.isin(expected, (LIVER, TUMOR)).astype(np.uint8))
    box = tuple(slice(max(0, part.start - 4), part.stop + 4) for part in found)
    tumors = np.zeros(image.shape, dtype=np.uint8)
    tumors[box] = softmax(tumor_forward(kind), image[box], TUMOR_FOLDERS[kind]).argmax(0).numpy()
    assert dice(tumors, (expected == TUMOR).astype(np.uint8), 1) >= 0.8
