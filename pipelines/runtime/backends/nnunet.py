"""nnU-Net v2 results folders through nnunetv2's ``nnUNetPredictor``, on in-memory arrays.

The image goes in as nnU-Net's ``SimpleITKIO`` would read it: ``(C, z, y, x)`` float32 with
properties ``{"spacing": [sz, sy, sx]}`` (``[slice, row, column]`` is already SimpleITK's array
order). nnU-Net's own preprocessor (``configuration_manager.preprocessor_class().run_case_npy``:
transpose, crop to non-zero, normalise, resample per the plans) and sliding-window prediction
(``predict_logits_from_preprocessed_data``: tile step, mirroring, folds, Gaussian blending) run
unchanged. The export is ours, replacing nnU-Net's
``convert_predicted_logits_to_segmentation_with_correct_shape`` (which resamples every class's
logits with scipy before the argmax): argmax at model resolution
(nnU-Net's ``LabelManager``), nearest-label resampling on torch to the cropped shape, the crop put
back into its bounding box, the plans' ``transpose_backward``. When the source spacing is the
plans' spacing nothing is resampled and the labels are nnU-Net's own, voxel for voxel.
No file is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipelines.models import ModelError
from pipelines.runtime.backends.base import Backend, BackendOutput, label_dtypes, module_bytes
from pipelines.runtime.backends.windowed import prepare_channels
from pipelines.runtime.resample import resample_labels, resample_scalar
from pipelines.runtime.scores import entropy_of
from pipelines.volume import ImageVolume

if TYPE_CHECKING:
    from pipelines.models import InstalledModel
    from pipelines.runtime.options import InferenceOptions

__all__ = ["NnunetBackend", "load_nnunet"]

logger = logging.getLogger(__name__)


class NnunetBackend(Backend):
    def __init__(
        self, model: InstalledModel, device: torch.device, predictor: Any, size_bytes: int
    ) -> None:
        super().__init__(model, device, size_bytes)
        self.predictor = predictor
        dataset = predictor.dataset_json
        self.channels = len(dataset.get("channel_names", dataset.get("modality", {"0": ""})))
        # the predictor keeps per-call settings on itself and reloads fold weights per call
        self._lock = threading.Lock()

    def predict(
        self,
        volume: ImageVolume,
        options: InferenceOptions,
        extra_channels: Sequence[np.ndarray],
        with_entropy: bool,
    ) -> BackendOutput:
        predictor = self.predictor
        plans, configuration = predictor.plans_manager, predictor.configuration_manager
        label_manager = predictor.label_manager
        if with_entropy and label_manager.has_regions:
            raise ValueError(
                f"model {self.model.name!r} is region-based: it has no softmax entropy"
            )
        spec = self.model.manifest.input
        started = time.perf_counter()
        source, transform, stacked = prepare_channels(
            volume, spec.orientation if spec is not None else None, extra_channels, self.channels
        )
        properties: dict[str, Any] = {"spacing": [float(s) for s in source.spacing]}
        preprocessor = configuration.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(
            stacked, None, properties, plans, configuration, predictor.dataset_json
        )
        del stacked
        prepared = time.perf_counter()

        with self._lock:
            predictor.tile_step_size = options.tile_step_size
            predictor.use_mirroring = options.mirroring
            logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data))
        del data
        inferred = time.perf_counter()

        torch_dtype, numpy_dtype = label_dtypes(self.model.manifest)
        segmentation = label_manager.convert_logits_to_segmentation(logits)
        if isinstance(segmentation, np.ndarray):
            segmentation = torch.from_numpy(segmentation)
        labels = self._to_source(segmentation.to(torch_dtype), properties, plans)
        labels = transform.revert(labels)
        label_array = np.ascontiguousarray(labels.numpy()).astype(numpy_dtype, copy=False)
        entropy_array = None
        if with_entropy:
            entropy = entropy_of(logits, probabilities=False)
            del logits
            entropy = transform.revert(self._to_source(entropy, properties, plans))
            entropy_array = np.ascontiguousarray(entropy.numpy(), dtype=np.float32)
        finished = time.perf_counter()
        return BackendOutput(
            label_array,
            entropy_array,
            {
                "preprocess": prepared - started,
                "inference": inferred - prepared,
                "postprocess": finished - inferred,
            },
        )

    @staticmethod
    def _to_source(values: torch.Tensor, properties: dict[str, Any], plans: Any) -> torch.Tensor:
        """Undo nnU-Net's preprocessing on a map: resample, uncrop, transpose back."""
        cropped_shape = [int(n) for n in properties["shape_after_cropping_and_before_resampling"]]
        if values.is_floating_point():
            values = resample_scalar(values.float(), cropped_shape)
        else:
            values = resample_labels(values, cropped_shape)
        full = torch.zeros(
            [int(n) for n in properties["shape_before_cropping"]], dtype=values.dtype
        )
        box = tuple(slice(int(lo), int(hi)) for lo, hi in properties["bbox_used_for_cropping"])
        full[box] = values
        return full.permute([int(a) for a in plans.transpose_backward])


def load_nnunet(model: InstalledModel, device: torch.device) -> NnunetBackend:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    spec = model.manifest.nnunet
    if spec is None:
        raise ModelError(
            f"model {model.name!r}: an nnU-Net model's manifest needs an nnunet section"
        )
    folder = model.path(spec.results_folder)
    printed = io.StringIO()
    try:
        # nnunetv2 prints (about the device) instead of logging; keep it off the worker's stdout
        with contextlib.redirect_stdout(printed):
            predictor = nnUNetPredictor(
                tile_step_size=0.5,
                use_gaussian=True,
                use_mirroring=True,
                perform_everything_on_device=device.type == "cuda",
                device=device,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
            predictor.initialize_from_trained_model_folder(
                str(folder), use_folds=tuple(spec.folds), checkpoint_name=spec.checkpoint
            )
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ModelError(f"model {model.name!r}: nnU-Net cannot load {folder}: {exc}") from exc
    if printed.getvalue().strip():
        logger.debug("nnunetv2 said: %s", printed.getvalue().strip())
    predictor.network.to(device)
    _check_labels(model, predictor.dataset_json)
    fold_bytes = sum(
        t.numel() * t.element_size()
        for parameters in predictor.list_of_parameters
        for t in parameters.values()
        if isinstance(t, torch.Tensor)
    )
    return NnunetBackend(model, device, predictor, module_bytes(predictor.network) + fold_bytes)


def _check_labels(model: InstalledModel, dataset: dict[str, Any]) -> None:
    """The manifest may rename nnU-Net's labels, not invent values the network never gives."""
    values: set[int] = set()
    for value in dataset.get("labels", {}).values():
        values.update([value] if isinstance(value, int) else value)
    unknown = sorted(set(model.manifest.labels) - values)
    if unknown:
        raise ModelError(
            f"model {model.name!r}: manifest label values {unknown} are not in its dataset.json"
        )
