"""The patch-based path shared by MONAI, TorchScript and ONNX models.

Reorient to the manifest's axis codes (exact), resample to its spacing (trilinear), normalise,
run ``monai.inferers.sliding_window_inference`` (which pads an image smaller than the patch and
crops the result back), softmax and argmax at model resolution, then labels back to the source
grid by nearest label and the inverse reorientation. A 2D model (``input.spatial_dims == 2``)
sees one z slice at a time; its spacing applies in-plane only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipelines.models import ModelError
from pipelines.runtime.backends.base import Backend, BackendOutput, label_dtypes
from pipelines.runtime.geometry import Reorientation, reorient
from pipelines.runtime.normalization import normalize
from pipelines.runtime.resample import (
    resample_image,
    resample_labels,
    resample_scalar,
    target_shape,
)
from pipelines.runtime.scores import labels_and_entropy
from pipelines.volume import ImageVolume

if TYPE_CHECKING:
    from pipelines.models import InputSpec, InstalledModel
    from pipelines.runtime.options import InferenceOptions

__all__ = ["Forward", "WindowedBackend", "prepare_channels"]

Forward = Callable[[torch.Tensor], torch.Tensor]
IDENTITY = Reorientation((0, 1, 2), (False, False, False))
# Gaussian blending of overlapping windows, as the AbdomenAtlas/SuPreM and nnU-Net inference does:
# window borders, where a network sees least context, weigh less.
BLEND_MODE = "gaussian"


def prepare_channels(
    volume: ImageVolume,
    orientation: str | None,
    extra_channels: Sequence[np.ndarray],
    channels: int,
) -> tuple[ImageVolume, Reorientation, np.ndarray]:
    """The reoriented volume, its transform and the ``(C, z, y, x)`` float32 input channels."""
    if 1 + len(extra_channels) != channels:
        raise ValueError(
            f"the model takes {channels} channel(s): the image and {channels - 1} extra "
            f"(got {len(extra_channels)} extra)"
        )
    for extra in extra_channels:
        if extra.shape != volume.shape:
            raise ValueError(f"extra channel shape {extra.shape} is not the image's {volume.shape}")
    source, transform = (volume, IDENTITY) if orientation is None else reorient(volume, orientation)
    arrays = [source.array, *(transform.apply(np.asarray(extra)) for extra in extra_channels)]
    stacked = np.stack([np.asarray(a, dtype=np.float32) for a in arrays])
    return source, transform, stacked


class WindowedBackend(Backend):
    """A network called on patches; ``forward`` maps ``(N, C, *patch)`` to ``(N, K, *patch)``."""

    def __init__(
        self,
        model: InstalledModel,
        device: torch.device,
        size_bytes: int,
        forward: Forward,
        *,
        autocast: bool,
    ) -> None:
        super().__init__(model, device, size_bytes)
        spec = model.manifest.input
        if spec is None:
            raise ModelError(f"model {model.name!r}: its manifest has no input section")
        self.spec: InputSpec = spec
        self._forward = forward
        self._autocast = autocast

    def predict(
        self,
        volume: ImageVolume,
        options: InferenceOptions,
        extra_channels: Sequence[np.ndarray],
        with_entropy: bool,
    ) -> BackendOutput:
        started = time.perf_counter()
        spec = self.spec
        source, transform, stacked = prepare_channels(
            volume, spec.orientation, extra_channels, spec.channels
        )
        image = torch.from_numpy(stacked).to(self.device)
        if spec.spacing_mm is not None:
            x, y, z = spec.spacing_mm
            # a 2D model keeps the slices as they are
            spacing = (source.spacing[0] if spec.spatial_dims == 2 else z, y, x)
            image = resample_image(image, target_shape(source.shape, source.spacing, spacing))
        image[0] = normalize(image[0], spec.normalization)
        prepared = time.perf_counter()

        with torch.inference_mode(), self._amp(options):
            scores = self._scores(image, options)
        del image
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the timings split where the work did
        inferred = time.perf_counter()

        torch_dtype, numpy_dtype = label_dtypes(self.model.manifest)
        largest = max(self.model.manifest.labels, default=0)
        if scores.shape[0] <= largest:
            raise ModelError(
                f"model {self.model.name!r} gives {scores.shape[0]} classes but its manifest "
                f"names label {largest}"
            )
        labels, entropy = labels_and_entropy(
            scores,
            probabilities=self.model.manifest.output == "probabilities",
            with_entropy=with_entropy,
            label_dtype=torch_dtype,
        )
        del scores
        labels = transform.revert(resample_labels(labels, source.shape))
        label_array = np.ascontiguousarray(labels.cpu().numpy()).astype(numpy_dtype, copy=False)
        entropy_array = None
        if entropy is not None:
            entropy = transform.revert(resample_scalar(entropy, source.shape))
            entropy_array = np.ascontiguousarray(entropy.cpu().numpy(), dtype=np.float32)
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

    def _amp(self, options: InferenceOptions) -> contextlib.AbstractContextManager[Any]:
        if self._autocast and options.amp and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _scores(self, image: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
        """Per-class scores ``(K, z, y, x)`` on the model grid, from ``image`` ``(C, z, y, x)``.

        The network sees MONAI's layout, ``(N, C, x, y, z)`` (``(N, C, x, y)`` for 2D): what
        ``LoadImage`` (nibabel order) + ``Orientation`` give the published MONAI models in
        training, so the manifest's axis codes name the network's first, second, third axes.
        """
        from monai.inferers.utils import sliding_window_inference

        px, py, pz = self.spec.patch_size
        forward = self._forward

        def network(batch: torch.Tensor) -> torch.Tensor:
            # (N, C, z, y, x) <-> (N, C, x, y, z); 2D: (N, C, y, x) <-> (N, C, x, y)
            spatial = tuple(range(batch.ndim - 1, 1, -1))
            return forward(batch.permute(0, 1, *spatial)).permute(0, 1, *spatial)

        def window(batch: torch.Tensor, roi: tuple[int, ...]) -> torch.Tensor:
            result = sliding_window_inference(
                batch,
                roi_size=roi,
                sw_batch_size=options.sw_batch_size,
                predictor=network,
                overlap=options.overlap,
                mode=BLEND_MODE,
            )
            return result[0] if isinstance(result, torch.Tensor) else result[0][0]

        if self.spec.spatial_dims == 3:
            return window(image[None], (pz, py, px))
        scores: torch.Tensor | None = None
        for z in range(image.shape[1]):
            plane = window(image[:, z][None], (py, px))
            if scores is None:
                scores = plane.new_empty((plane.shape[0], image.shape[1], *plane.shape[1:]))
            scores[:, z] = plane
        assert scores is not None  # an ImageVolume has at least one slice
        return scores
