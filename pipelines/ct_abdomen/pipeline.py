"""The ct_abdomen pipeline (AbdomenAtlas): model with entropy -> organs -> volumes, uncertainty.

AbdomenAtlas's human-in-the-loop idea made visible to the reader: from the softmax the runtime
gives the normalised predictive entropy of every voxel (H(p) / ln C, 0 = certain, 1 = uniform);
its mean inside an organ is that organ's uncertainty, reported as a measurement, and above
`review_entropy_threshold` the SR marks the organ "review recommended" (a TID 1500 qualitative
evaluation on its segment).

The segment table is the model's whole label set (segment label = the manifest's value), found
or not: an organ not found (or below `min_organ_voxels`, then cleared) has a note and no
measurements, and the writer leaves it out of the SEG.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.codes import MEAN_PREDICTIVE_ENTROPY, NO_UNITS, review_recommended, segment_for
from pipelines.ct_abdomen.options import CtAbdomenOptions
from pipelines.model_pipeline import ModelPipeline
from pipelines.result import Evaluation, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["CtAbdomenPipeline", "OrganUncertainty", "organ_uncertainty"]


@dataclass(frozen=True)
class OrganUncertainty:
    label: int
    voxels: int
    mean_entropy: float


def organ_uncertainty(
    label_map: npt.NDArray[np.integer], entropy: npt.NDArray[np.floating], labels: list[int]
) -> dict[int, OrganUncertainty]:
    """Voxel count and mean entropy per label in `labels` that has voxels (one pass)."""
    if entropy.shape != label_map.shape:
        raise ValueError(f"entropy shape {entropy.shape} is not the grid {label_map.shape}")
    size = max([int(label_map.max(initial=0)), *labels]) + 1
    flat = label_map.ravel()
    counts = np.bincount(flat, minlength=size)
    sums = np.bincount(flat, weights=entropy.ravel().astype(np.float64), minlength=size)
    return {
        label: OrganUncertainty(label, int(counts[label]), float(sums[label] / counts[label]))
        for label in labels
        if counts[label] > 0
    }


class CtAbdomenPipeline(ModelPipeline):
    """Abdominal organs from one model, with per-organ uncertainty and review flags."""

    name = "ct_abdomen"
    code_version = "1.0.0"

    def __init__(self, *, runtime: ModelRuntime | None = None, **options: Any) -> None:
        super().__init__(runtime)
        self.options = CtAbdomenOptions(**options)

    @property
    def required_models(self) -> tuple[str, ...]:
        return (self.options.model,)

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        runtime, installed = self.prepare(volume, facts)
        model = self.options.model
        organs = installed[model].manifest.labels
        segments = organ_segments(organs)
        prediction = runtime.predict(model, volume, self.options.inference, with_entropy=True)
        if prediction.entropy is None:
            raise PipelineError(f"model {model} gave no predictive entropy")
        label_map = prediction.labels.copy()
        notes = clear_unknown_values(label_map, organs, model)
        found = organ_uncertainty(label_map, prediction.entropy, sorted(organs))
        for label in sorted(organs):
            organ = found.get(label)
            if organ is None:
                notes.append(f"{organs[label]} not found")
            elif organ.voxels < self.options.min_organ_voxels:
                label_map[label_map == label] = 0
                del found[label]
                notes.append(
                    f"{organs[label]} not found: {organ.voxels} voxels, fewer than "
                    f"min_organ_voxels {self.options.min_organ_voxels}, cleared"
                )
        measurements = list(segment_volumes(label_map, volume, segments))
        evaluations: list[Evaluation] = []
        threshold = self.options.review_entropy_threshold
        for label, organ in sorted(found.items()):
            measurements.append(
                Measurement(MEAN_PREDICTIVE_ENTROPY, organ.mean_entropy, NO_UNITS, label)
            )
            if organ.mean_entropy > threshold:
                evaluations.append(review_recommended(label))
                notes.append(
                    f"{organs[label]}: mean predictive entropy {organ.mean_entropy:.3f} "
                    f"above {threshold}, review recommended"
                )
        return PipelineResult(
            label_map=label_map,
            segments=segments,
            measurements=tuple(measurements),
            evaluations=tuple(evaluations),
            notes=tuple(notes),
        )


def organ_segments(organs: Mapping[int, str]) -> tuple[Segment, ...]:
    """One segment per manifest label, numbered by its value; a name without codes refuses."""
    try:
        return tuple(segment_for(organs[value], value) for value in sorted(organs))
    except KeyError as exc:
        raise PipelineError(f"a model labels a structure without codes: {exc}") from exc


def clear_unknown_values(
    label_map: npt.NDArray[np.integer], organs: Mapping[int, str], model: str
) -> list[str]:
    """Clear (in place) values the manifest does not name; a note says which."""
    present = np.flatnonzero(np.bincount(label_map.ravel()))
    unknown = [int(value) for value in present if value > 0 and value not in organs]
    if not unknown:
        return []
    label_map[np.isin(label_map, unknown)] = 0
    return [f"model {model} output label values its manifest does not name, left out: {unknown}"]
