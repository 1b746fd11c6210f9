"""The abdomen test models: ``abdomenatlas`` (9 organs, uncertain on an ambiguous spleen) and
the LiTS-style cascade ``lits_liver`` -> ``lits_tumor`` (+ TorchScript and ONNX exports),
trained on :mod:`dicom_node.phantom_abdomen` phantoms and scored on held-out ones.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage
from torch import nn

from dicom_node.phantom_abdomen import ABDOMEN_LABELS, make_abdomen, tumor_count
from test_models import monai_models as mm
from test_models.training import Case, TrainingPlan, dice_scores, train

__all__ = ["AMBIGUOUS_ORGAN", "MODELS", "build_abdomen_models"]

logger = logging.getLogger(__name__)

ORGANS = {value: name for name, value in ABDOMEN_LABELS.items() if name != "liver_tumor"}
_LIVER, _TUMOR = ABDOMEN_LABELS["liver"], ABDOMEN_LABELS["liver_tumor"]
AMBIGUOUS_ORGAN = "spleen"
# How the annotators of the ambiguous training phantoms split the organ's voxels between it
# and its neighbours: the model learns these odds there (cross-entropy only, weighted up), so
# its predictive entropy inside that organ is high (the odds' own entropy is 0.58 of the
# maximum over 10 classes) while it stays low elsewhere.
_AMBIGUOUS_VOTES = {
    ABDOMEN_LABELS["spleen"]: 0.4,
    0: 0.2,
    ABDOMEN_LABELS["kidney_left"]: 0.2,
    ABDOMEN_LABELS["stomach"]: 0.2,
}
_DISPUTED_WEIGHT = 5.0
_AMBIGUOUS_CASES = 3
# The tumor model sees more phantoms (only their liver boxes, small): a tumor model that
# saw 20 tumors misses some of a new phantom's.
_TUMOR_PHANTOMS = 24
# Voxels around the liver box the tumor model trains on; the wide one teaches it that there
# are no tumors outside the liver, should a stray liver voxel widen the box.
_CROP_MARGINS = (2, 4, 10)
_EVAL_MARGIN = 4  # voxels (12 mm at 3 mm; the ct_liver_tumor pipeline's default is 10 mm)
_MIN_TUMOR_VOXELS = 30

MODELS = {
    "abdomenatlas": mm.MonaiModel(
        name="abdomenatlas",
        labels=ORGANS,
        channels=(8, 16, 32, 64),
        patch_size=(48, 48, 48),
        iterations=600,
        description="AbdomenAtlas/SuPreM-style MONAI UNet trained on dicom-node abdomen "
        "phantoms (test model, not for clinical use)",
        checkpoint_key="net",
        module_prefix=True,
    ),
    "lits_liver": mm.MonaiModel(
        name="lits_liver",
        labels={1: "liver"},
        channels=(8, 16, 32, 64),
        patch_size=(48, 48, 48),
        iterations=500,
        description="LiTS-cascade step 1 (liver, tumors included) MONAI UNet trained on "
        "dicom-node abdomen phantoms (test model)",
        checkpoint_key=None,
        learning_rate=1e-2,
    ),
    "lits_tumor": mm.MonaiModel(
        name="lits_tumor",
        labels={1: "liver_tumor"},
        channels=(8, 16, 32, 64),
        patch_size=(48, 48, 48),
        iterations=1000,
        description="LiTS-cascade step 2 (tumor inside the liver box) MONAI UNet trained on "
        "dicom-node abdomen phantoms (test model)",
        checkpoint_key="state_dict",
        learning_rate=1e-2,
    ),
}

Phantom = tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]  # model layout: image, truth


def _phantom(seed: int, ambiguous: str | None = None) -> Phantom:
    volume, truth = make_abdomen(seed=seed, ambiguous=ambiguous)
    return mm.window(volume), mm.to_model_layout(truth)


def _organ_case(phantom: Phantom, rng: np.random.Generator | None = None) -> Case:
    """AbdomenAtlas labels: tumors count as liver. With `rng`, the ambiguous organ's voxels
    take labels drawn from `_AMBIGUOUS_VOTES`."""
    image, truth = phantom
    labels = np.where(truth == _TUMOR, _LIVER, truth).astype(np.int64)
    if rng is None:
        return Case(image[np.newaxis], labels)
    organ = labels == ABDOMEN_LABELS[AMBIGUOUS_ORGAN]
    votes = rng.choice(list(_AMBIGUOUS_VOTES), organ.sum(), p=list(_AMBIGUOUS_VOTES.values()))
    labels[organ] = votes
    return Case(image[np.newaxis], labels, disputed=organ)


def _liver_case(phantom: Phantom) -> Case:
    image, truth = phantom
    return Case(image[np.newaxis], np.isin(truth, (_LIVER, _TUMOR)).astype(np.int64))


def _tumor_case(phantom: Phantom, margin: int) -> Case:
    image, truth = phantom
    box = mm.bounding_box(np.isin(truth, (_LIVER, _TUMOR)), margin)
    assert box is not None  # every phantom has a liver
    return Case(image[box][np.newaxis], (truth[box] == _TUMOR).astype(np.int64))


def _train(
    model: mm.MonaiModel, cases: Sequence[Case], seed: int, disputed_weight: float = 1.0
) -> tuple[nn.Module, float]:
    logger.info("training %s (%d iterations)", model.name, model.iterations)
    torch.manual_seed(seed)
    network = mm.build_unet(model)
    plan = TrainingPlan(
        patch_size=model.patch_size,
        iterations=model.iterations,
        classes=1 + max(model.labels),
        dice_classes=tuple(sorted(model.labels)),
        learning_rate=model.learning_rate,
        disputed_weight=disputed_weight,
        seed=seed,
    )
    loss = train(network, cases, plan)
    return network, loss


def build_abdomen_models(
    out: Path, train_seeds: Sequence[int], test_seeds: Sequence[int], *, scale: float = 1.0
) -> dict[str, dict[str, Any]]:
    """Train, save and score the abdomen models; returns per model its scores. `scale`
    shortens the training (a trial run)."""
    phantoms = [_phantom(seed) for seed in train_seeds]
    rng = np.random.default_rng(7)
    ambiguous = [_phantom(500 + k, AMBIGUOUS_ORGAN) for k in range(_AMBIGUOUS_CASES)]
    held_out = {seed: _phantom(seed) for seed in test_seeds}
    report: dict[str, dict[str, Any]] = {}

    models = {
        name: dataclasses.replace(model, iterations=max(2, round(model.iterations * scale)))
        for name, model in MODELS.items()
    }
    atlas = models["abdomenatlas"]
    disputed = [_organ_case(p, rng) for p in ambiguous]
    # each ambiguous phantom three times, so that the disputed spleen is seen often enough
    cases = [_organ_case(p) for p in phantoms] + disputed * 3
    network, loss = _train(atlas, cases, seed=11, disputed_weight=_DISPUTED_WEIGHT)
    mm.save_checkpoint(out / atlas.name / "model.pth", atlas, network)
    mm.write_spec(out / atlas.name / "spec.yaml", atlas)
    report[atlas.name] = _score_organs(network, atlas, held_out, test_seeds[0]) | {"loss": loss}

    liver_model = models["lits_liver"]
    liver, loss = _train(liver_model, [_liver_case(p) for p in phantoms], seed=12)
    mm.save_checkpoint(out / liver_model.name / "model.pth", liver_model, liver)
    mm.write_spec(out / liver_model.name / "spec.yaml", liver_model)
    scores = _worst(
        dice_scores(
            mm.infer(liver, image, liver_model.patch_size).argmax(0).numpy(),
            np.isin(truth, (_LIVER, _TUMOR)),
            {"liver": 1},
        )
        for image, truth in held_out.values()
    )
    report[liver_model.name] = {"dice": scores, "loss": loss}

    tumor_model = models["lits_tumor"]
    more = [_phantom(seed) for seed in range(max(train_seeds) + 1, _TUMOR_PHANTOMS)]
    crops = [_tumor_case(p, margin) for p in phantoms + more for margin in _CROP_MARGINS]
    tumor, loss = _train(tumor_model, crops, seed=13)
    mm.save_checkpoint(out / tumor_model.name / "model.pth", tumor_model, tumor)
    mm.write_spec(out / tumor_model.name / "spec.yaml", tumor_model)
    report[tumor_model.name] = _score_cascade(liver, tumor, held_out) | {"loss": loss}

    logger.info("exporting lits_tumor as TorchScript and ONNX")
    script = out / "lits_tumor_torchscript"
    mm.export_torchscript(script / "model.pt", tumor, tumor_model.patch_size)
    mm.write_spec(script / "spec.yaml", tumor_model, network=False)
    loaded = torch.jit.load(str(script / "model.pt"))  # type: ignore[no-untyped-call]
    report["lits_tumor_torchscript"] = _score_cascade(liver, loaded, held_out)

    onnx_folder = out / "lits_tumor_onnx"
    mm.export_onnx(onnx_folder / "model.onnx", tumor, tumor_model.patch_size)
    mm.write_spec(onnx_folder / "spec.yaml", tumor_model, network=False)
    report["lits_tumor_onnx"] = _score_cascade(
        liver, _onnx_forward(onnx_folder / "model.onnx"), held_out
    )
    return report


def _worst(runs: Any) -> dict[str, float]:
    """The lowest score per structure over several phantoms."""
    worst: dict[str, float] = {}
    for scores in runs:
        for name, value in scores.items():
            worst[name] = min(worst.get(name, 1.0), value)
    return worst


def _score_organs(
    network: nn.Module, model: mm.MonaiModel, held_out: dict[int, Phantom], seed: int
) -> dict[str, Any]:
    """Dice per organ (worst over the held-out phantoms) and the mean normalised entropy
    inside each predicted organ on a plain and on the ambiguous phantom."""
    names = {name: value for value, name in model.labels.items()}
    dice = _worst(
        dice_scores(
            mm.infer(network, image, model.patch_size).argmax(0).numpy(),
            np.where(truth == _TUMOR, _LIVER, truth),
            names,
        )
        for image, truth in held_out.values()
    )
    entropy = {}
    for label, ambiguous in (("plain", None), ("ambiguous", AMBIGUOUS_ORGAN)):
        image, _ = _phantom(seed, ambiguous)
        probabilities = mm.infer(network, image, model.patch_size)
        predicted = probabilities.argmax(0).numpy()
        logs = torch.log(probabilities.clamp_min(1e-12))
        normalised = (-(probabilities * logs).sum(0) / np.log(len(probabilities))).numpy()
        entropy[label] = {
            name: float(normalised[predicted == value].mean()) if (predicted == value).any() else 0
            for name, value in names.items()
        }
    return {"dice": dice, "entropy": entropy}


def _onnx_forward(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(batch: torch.Tensor) -> torch.Tensor:
        (logits,) = session.run(None, {"image": batch.numpy()})
        return torch.from_numpy(logits)

    return forward


def _score_cascade(liver: nn.Module, tumor: Any, held_out: dict[int, Phantom]) -> dict[str, Any]:
    """The LiTS cascade as the ct_liver_tumor pipeline runs it, on each held-out phantom:
    the liver model's largest component, its box + margin, the tumor model inside, tumors
    kept inside the (hole-filled) liver, small components dropped; tumor Dice and count."""
    patch = MODELS["lits_tumor"].patch_size
    runs, counts = [], []
    every = np.ones((3, 3, 3), dtype=bool)
    for image, truth in held_out.values():
        found = mm.infer(liver, image, patch).argmax(0).numpy() == 1
        components, _ = ndimage.label(found, structure=every)
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        liver_mask = components == int(np.argmax(sizes)) if sizes.any() else found
        box = mm.bounding_box(liver_mask, _EVAL_MARGIN)
        tumors = np.zeros(truth.shape, dtype=np.uint8)
        if box is not None:
            tumors[box] = mm.infer(tumor, image[box], patch).argmax(0).numpy()
        tumors &= ndimage.binary_fill_holes(liver_mask).astype(np.uint8)
        components, _ = ndimage.label(tumors, structure=every)
        sizes = np.bincount(components.ravel())
        small = np.flatnonzero(sizes < _MIN_TUMOR_VOXELS)
        tumors[np.isin(components, small[small > 0])] = 0
        runs.append(dice_scores(tumors, (truth == _TUMOR).astype(np.uint8), {"liver_tumor": 1}))
        counts.append((tumor_count(np.where(tumors > 0, _TUMOR, 0)), tumor_count(truth)))
    return {"dice": _worst(runs), "tumor_counts": counts}
