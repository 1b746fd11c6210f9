"""Running one job: assemble -> pipeline -> write SEG + SR -> store them in the node.

The chain reads top to bottom; each step is a plain function of the one before (MONAI Deploy
style without the framework). Pipelines are created once per worker process and kept
(resident models). The SEG and SR get UIDs derived from the job key, so a job run again after
a crash writes the same instances: the node and every destination hold one copy, not two.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.config.models import NodeConfig
from dicom_node.errors import VolumeAssemblyError
from dicom_node.index import Index
from dicom_node.jobs.figures import write_figures
from dicom_node.jobs.intake import model_runtime
from dicom_node.jobs.queue import Job
from dicom_node.series.assembly import assemble_series
from dicom_node.series.cine import assemble_cine
from dicom_node.series.snapshot import load_snapshot
from dicom_node.storage import InstanceStore, Receipt
from dicom_node.uids import derive_uid
from pipelines import (
    Pipeline,
    PipelineError,
    PipelineResult,
    SeriesFacts,
    create_pipeline,
    pipeline_uses_models,
)
from pipelines.base import CinePipeline
from pipelines.models import ModelError, ModelNotInstalledError
from pipelines.result import Curve
from seg_writer import (
    AlgorithmInfo,
    ResultUids,
    SourceImage,
    WriterInputError,
    WriterOptions,
    write_results,
)

if TYPE_CHECKING:  # torch is imported only once a model pipeline is created
    from pipelines.runtime import ModelRuntime

__all__ = ["JobOutput", "JobRunner", "PermanentJobError"]

logger = logging.getLogger(__name__)

# Series attributes a pipeline may look at (SeriesFacts.attributes).
_FACT_KEYWORDS = (
    "Modality",
    "BodyPartExamined",
    "SeriesDescription",
    "ProtocolName",
    "Manufacturer",
    "ManufacturerModelName",
    "PatientSex",
    "PatientAge",
    "PatientPosition",
    "ContrastBolusAgent",
    "ConvolutionKernel",
    "MagneticFieldStrength",
)


class PermanentJobError(Exception):
    """The job cannot succeed on this series as it is; retrying would not help."""


@dataclass(frozen=True)
class JobOutput:
    result_instances: tuple[str, ...]  # SOP Instance UIDs stored: SEG, SR
    timings: dict[str, float]  # seconds per stage


def result_uids(job: Job) -> ResultUids:
    key = job.job_key
    return ResultUids(
        segmentation_series=derive_uid("dicom-node", key, "seg-series"),
        segmentation_instance=derive_uid("dicom-node", key, "seg-instance"),
        report_series=derive_uid("dicom-node", key, "sr-series"),
        report_instance=derive_uid("dicom-node", key, "sr-instance"),
    )


def series_facts(headers: Mapping[str, Any]) -> SeriesFacts:
    header = next(iter(headers.values()))
    attributes = {
        keyword: str(header.get(keyword, "")) for keyword in _FACT_KEYWORDS if keyword in header
    }
    return SeriesFacts(
        modality=attributes.get("Modality", ""),
        body_part_examined=attributes.get("BodyPartExamined", ""),
        attributes=attributes,
    )


class JobRunner:
    def __init__(self, config: NodeConfig, index: Index, store: InstanceStore) -> None:
        self._config = config
        self._index = index
        self._store = store
        self._pipelines: dict[str, Pipeline] = {}
        self._runtime: ModelRuntime | None = None
        results = config.results
        self._options = WriterOptions(
            seg_series_number=results.seg_series_number,
            seg_series_description=results.seg_series_description,
            sr_series_number=results.sr_series_number,
            sr_series_description=results.sr_series_description,
            institution_name=results.institution_name,
        )

    def model_runtime(self) -> ModelRuntime:
        """The worker's one model runtime, shared by its model pipelines (created on first
        use, so a worker that runs no model pipeline never imports torch)."""
        if self._runtime is None:
            try:
                self._runtime = model_runtime(self._config)
            except ValueError as exc:  # inference.device names a GPU that is not there
                raise PermanentJobError(f"inference.device: {exc}") from exc
            import torch

            # The job workers share the CPUs; each gets its part for intra-op threads.
            cpus = os.cpu_count() or 1
            torch.set_num_threads(max(1, cpus // self._config.executor.workers))
        return self._runtime

    def pipeline(self, name: str) -> Pipeline:
        """The worker's resident instance of a pipeline (created on first use)."""
        if name not in self._pipelines:
            options: Mapping[str, Any] = self._config.pipelines.get(name, {})
            runtime = self.model_runtime() if pipeline_uses_models(name) else None
            self._pipelines[name] = create_pipeline(name, options, runtime=runtime)
        return self._pipelines[name]

    def run(self, job: Job) -> JobOutput:
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal started
            now = time.perf_counter()
            timings[stage] = round(now - started, 3)
            started = now

        with self._index.read_connection() as connection:
            snapshot = load_snapshot(connection, job.series_instance_uid)
        if snapshot is None or not snapshot.instances:
            raise PermanentJobError("the series is no longer in the index")
        paths = [self._store.area.absolute(i.file_path) for i in snapshot.instances]
        pipeline = self.pipeline(job.pipeline)
        curves: tuple[Curve, ...] = ()
        try:
            if getattr(pipeline, "input_kind", "volume") == "cine":
                assembled_cine = assemble_cine(paths)
                headers: Mapping[str, Any] = assembled_cine.headers
            else:
                assembled = assemble_series(paths)
                headers = assembled.headers
        except VolumeAssemblyError as exc:
            raise PermanentJobError(f"series refused: {exc}") from exc
        lap("assemble")
        try:
            if getattr(pipeline, "input_kind", "volume") == "cine":
                cine_pipeline = cast(CinePipeline, pipeline)
                cine_result = cine_pipeline.run_cine(assembled_cine.cine, series_facts(headers))
                result: PipelineResult = cine_result.result
                curves = cine_result.curves
                frames = [f for phase in cine_result.phases for f in assembled_cine.frames[phase]]
            else:
                result = pipeline.run(assembled.volume, series_facts(headers))
                frames = list(assembled.frames)
        except ModelNotInstalledError as exc:
            # The message is the fix (the install command); it stands alone.
            raise PermanentJobError(str(exc)) from exc
        except PipelineError as exc:
            raise PermanentJobError(f"pipeline {job.pipeline} refused the series: {exc}") from exc
        except ModelError as exc:  # changed weights, a broken manifest: retrying cannot help
            raise PermanentJobError(f"pipeline {job.pipeline}: {exc}") from exc
        lap("pipeline")
        sources = [
            SourceImage(headers[frame.sop_instance_uid], frame.frame_number) for frame in frames
        ]
        try:
            documents = write_results(
                sources,
                result,
                AlgorithmInfo(pipeline.name, pipeline.version),
                self._options,
                uids=result_uids(job),
            )
        except WriterInputError as exc:
            # The pipeline's notes say why (e.g. "no liver found"): keep them with the failure.
            why = "".join(f"; {note}" for note in result.notes)
            raise PermanentJobError(f"results cannot be written: {exc}{why}") from exc
        lap("write")
        stored = []
        for dataset in (documents.segmentation, documents.report):
            self._store.store_dataset(
                dataset,
                Receipt(
                    transfer_syntax_uid=ExplicitVRLittleEndian,
                    affected_sop_class_uid=str(dataset.SOPClassUID),
                    affected_sop_instance_uid=str(dataset.SOPInstanceUID),
                    calling_ae_title=self._config.node.ae_title,
                    source_address="dicom-node",
                    origin="result",
                ),
            )
            stored.append(str(dataset.SOPInstanceUID))
        lap("store")
        if curves:
            try:
                write_figures(self._store.area.root, job.id, curves)
            except Exception:  # a figure is a convenience: the numbers are in the SR
                logger.exception("job %d: the figures could not be drawn", job.id)
            lap("figures")
        return JobOutput(tuple(stored), timings)
