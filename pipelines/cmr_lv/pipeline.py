"""The cmr_lv pipeline: a 2D network on every slice and phase of a short-axis cine -> LV blood
pool and myocardium -> volumes over the cycle -> EDV, ESV, SV, EF, LV mass.

Volumes are summed slices (Simpson's rule): voxel count x pixel area x slice spacing, the
distance between slice centres; where slices are thinner than that spacing (a gap), a slice
stands for its gap too. End diastole is the phase of the largest blood-pool volume, end
systole of the smallest (the first such phase on ties). EF = (EDV - ESV) / EDV; LV mass =
myocardial volume at ED x `myocardial_density_g_per_ml`.

The result's label map is the ED phase's slices over the ES phase's (`CineResult.phases`):
blood pool and myocardium at ED (1, 2) and at ES (3, 4); the SEG derives each segment's frames
from its phase's images. SR: a volume per segment, LVEDV (LOINC 8821-1) on the ED blood pool,
LVESV (8823-7) on the ES one, LV mass (18087-7) on the ED myocardium, stroke volume (SCT
90096001) and EF by MR (LOINC 8811-2) for the whole LV. The blood-pool volume of every phase
is a curve (a figure on the dashboard) and a note.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from pipelines.base import PipelineError, SeriesFacts, segment_volumes
from pipelines.cine import CineVolume
from pipelines.cmr_lv.options import CmrLvOptions
from pipelines.codes import (
    GRAM,
    LV_EJECTION_FRACTION,
    LV_END_DIASTOLIC_VOLUME,
    LV_END_SYSTOLIC_VOLUME,
    LV_MASS,
    MILLILITER,
    PERCENT,
    STROKE_VOLUME,
    segment_for,
)
from pipelines.model_pipeline import ModelPipeline
from pipelines.result import CineResult, Curve, Measurement, PipelineResult, Segment
from pipelines.volume import ImageVolume

if TYPE_CHECKING:  # the runtime imports torch; constructing a pipeline to inspect it need not
    from pipelines.runtime import ModelRuntime

__all__ = ["CmrLvPipeline", "LvFunction", "lv_function"]

BLOOD_POOL, MYOCARDIUM = "lv_blood_pool", "lv_myocardium"
ED_BLOOD, ED_MUSCLE, ES_BLOOD, ES_MUSCLE = 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class LvFunction:
    """The LV function of a cine from its blood-pool and myocardium volumes per phase."""

    blood_ml: tuple[float, ...]
    muscle_ml: tuple[float, ...]
    ed: int
    es: int
    edv_ml: float
    esv_ml: float
    sv_ml: float
    ef_percent: float
    mass_g: float


def lv_function(
    blood_ml: npt.ArrayLike, muscle_ml: npt.ArrayLike, density_g_per_ml: float = 1.05
) -> LvFunction:
    """ED = largest blood pool, ES = smallest (first on ties); EF in percent."""
    blood = np.asarray(blood_ml, dtype=float)
    muscle = np.asarray(muscle_ml, dtype=float)
    ed, es = int(np.argmax(blood)), int(np.argmin(blood))
    edv, esv = float(blood[ed]), float(blood[es])
    if edv <= 0:
        raise PipelineError("no LV blood pool found in any phase")
    return LvFunction(
        tuple(float(v) for v in blood),
        tuple(float(v) for v in muscle),
        ed,
        es,
        edv,
        esv,
        edv - esv,
        100.0 * (edv - esv) / edv,
        float(muscle[ed]) * density_g_per_ml,
    )


class CmrLvPipeline(ModelPipeline):
    """LV blood pool and myocardium on every phase of a short-axis cine; LV function."""

    name = "cmr_lv"
    code_version = "1.0.0"
    modality = "MR"
    input_kind: Literal["cine"] = "cine"

    def __init__(self, *, runtime: ModelRuntime | None = None, **options: Any) -> None:
        super().__init__(runtime)
        self.options = CmrLvOptions(**options)

    @property
    def required_models(self) -> tuple[str, ...]:
        return (self.options.model,)

    def run(self, volume: ImageVolume, facts: SeriesFacts) -> PipelineResult:
        raise PipelineError("cmr_lv takes a cine series (slices x phases), not one volume")

    def run_cine(self, cine: CineVolume, facts: SeriesFacts) -> CineResult:
        runtime, installed = self.prepare(cine.grid, facts)
        if cine.grid.shape[0] < self.options.min_slices:
            raise PipelineError(
                f"a short-axis stack needs at least {self.options.min_slices} slice locations "
                f"(this cine has {cine.grid.shape[0]})"
            )
        if len(cine.phases) < self.options.min_phases:
            raise PipelineError(
                f"a cine of the cardiac cycle needs at least {self.options.min_phases} phases "
                f"(this series has {len(cine.phases)})"
            )
        model = self.options.model
        names = {name: value for value, name in installed[model].manifest.labels.items()}
        missing = [name for name in (BLOOD_POOL, MYOCARDIUM) if name not in names]
        if missing:
            raise PipelineError(f"model {model} labels no {' or '.join(missing)}")
        voxel_ml = cine.grid.voxel_volume_mm3 / 1000.0
        predictions = []
        blood, muscle = [], []
        for phase in cine.phases:
            labels = runtime.predict(model, phase, self.options.inference).labels
            predictions.append(labels)
            blood.append(np.count_nonzero(labels == names[BLOOD_POOL]) * voxel_ml)
            muscle.append(np.count_nonzero(labels == names[MYOCARDIUM]) * voxel_ml)
        function = lv_function(blood, muscle, self.options.myocardial_density_g_per_ml)

        slices = cine.grid.shape[0]
        label_map = np.zeros((2 * slices, *cine.grid.shape[1:]), dtype=np.uint8)
        for offset, index, first in ((0, function.ed, ED_BLOOD), (slices, function.es, ES_BLOOD)):
            part = label_map[offset : offset + slices]
            part[predictions[index] == names[BLOOD_POOL]] = first
            part[predictions[index] == names[MYOCARDIUM]] = first + 1
        segments = _segments()
        measurements = (
            *segment_volumes(label_map, cine.grid, segments),
            Measurement(LV_END_DIASTOLIC_VOLUME, function.edv_ml, MILLILITER, ED_BLOOD),
            Measurement(LV_END_SYSTOLIC_VOLUME, function.esv_ml, MILLILITER, ES_BLOOD),
            Measurement(LV_MASS, function.mass_g, GRAM, ED_MUSCLE),
            Measurement(STROKE_VOLUME, function.sv_ml, MILLILITER),
            Measurement(LV_EJECTION_FRACTION, function.ef_percent, PERCENT),
        )
        times = _times(cine)
        notes = (
            f"end diastole: phase {function.ed + 1} of {len(cine.phases)} "
            f"({times[function.ed]:.0f} ms); end systole: phase {function.es + 1} "
            f"({times[function.es]:.0f} ms)",
            f"EDV {function.edv_ml:.1f} ml, ESV {function.esv_ml:.1f} ml, SV "
            f"{function.sv_ml:.1f} ml, EF {function.ef_percent:.1f} %, LV mass "
            f"{function.mass_g:.1f} g",
            f"volumes: voxels x {cine.grid.spacing[1]:g} x {cine.grid.spacing[2]:g} mm pixels x "
            f"{cine.grid.spacing[0]:g} mm between slice centres (gaps count as their slice)",
            "LV blood pool (ml) by phase: " + ", ".join(f"{v:.1f}" for v in function.blood_ml),
        )
        result = PipelineResult(
            label_map=label_map, segments=segments, measurements=measurements, notes=notes
        )
        curve = Curve(
            "LV blood pool volume",
            "time after R wave (ms)" if cine.trigger_times_ms[0] is not None else "phase",
            "ml",
            tuple(times),
            function.blood_ml,
            {"ED": function.ed, "ES": function.es},
        )
        return CineResult(result, (function.ed, function.es), (curve,))


def _times(cine: CineVolume) -> list[float]:
    """Trigger time per phase; the phase number where the series gave only an index."""
    return [
        float(time) if time is not None else float(index)
        for index, time in enumerate(cine.trigger_times_ms)
    ]


def _segments() -> tuple[Segment, ...]:
    rows = []
    for label, name, phase in (
        (ED_BLOOD, BLOOD_POOL, "end diastole"),
        (ED_MUSCLE, MYOCARDIUM, "end diastole"),
        (ES_BLOOD, BLOOD_POOL, "end systole"),
        (ES_MUSCLE, MYOCARDIUM, "end systole"),
    ):
        segment = segment_for(name, label)
        short = "ed" if phase == "end diastole" else "es"
        rows.append(
            dataclasses.replace(
                segment, name=f"{name}_{short}", description=f"{segment.description}, {phase}"
            )
        )
    return tuple(rows)
