"""One SEG for two phases of a cine: every frame derives from the source image of its
segment's phase at its plane (single-frame MR and Enhanced MR sources), highdicom reads the
masks back per source, and dciodvfy finds no error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_node.phantom_cine import CinePhantom, make_cine, write_cine
from dicom_node.series.cine import AssembledCine, assemble_cine
from pipelines.base import segment_volumes
from pipelines.codes import segment_for
from pipelines.result import PipelineResult
from seg_writer import AlgorithmInfo, SourceImage, WriterInputError, WriterOptions, write_results
from tests.support.results import dciodvfy_errors

ED, ES = 0, 2


@pytest.fixture(scope="module")
def phantom() -> CinePhantom:
    return make_cine(seed=1, phases=6, slices=4, matrix=32, pixel_mm=7.0)


def cine_sources(
    folder: Path, phantom: CinePhantom, enhanced: bool
) -> tuple[AssembledCine, list[SourceImage]]:
    paths = write_cine(folder, phantom, enhanced=enhanced)
    assembled = assemble_cine(paths, decode_workers=1)
    full = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(p) for p in paths)}
    frames = (*assembled.frames[ED], *assembled.frames[ES])
    return assembled, [SourceImage(full[f.sop_instance_uid], f.frame_number) for f in frames]


def two_phase_result(phantom: CinePhantom) -> PipelineResult:
    """Blood pool and myocardium at ED (labels 1, 2) over ES (3, 4), stacked."""
    slices = phantom.cine.grid.shape[0]
    label_map = np.zeros((2 * slices, *phantom.cine.grid.shape[1:]), np.uint8)
    for offset, phase, first in ((0, ED, 1), (slices, ES, 3)):
        label_map[offset : offset + slices][phantom.truths[phase] == 1] = first
        label_map[offset : offset + slices][phantom.truths[phase] == 2] = first + 1
    liver = segment_for("liver", 1)
    segments = tuple(
        dataclasses.replace(liver, label=label, name=f"part_{label}", description=f"part {label}")
        for label in (1, 2, 3, 4)
    )
    grid = phantom.cine.grid
    stacked = dataclasses.replace(grid, array=np.zeros(label_map.shape, np.float32))
    return PipelineResult(label_map, segments, segment_volumes(label_map, stacked, segments))


@pytest.mark.parametrize("enhanced", [False, True], ids=["single-frame", "enhanced"])
def test_each_segment_derives_from_its_phase(
    tmp_path: Path, phantom: CinePhantom, enhanced: bool
) -> None:
    assembled, sources = cine_sources(tmp_path / "cine", phantom, enhanced)
    documents = write_results(
        sources, two_phase_result(phantom), AlgorithmInfo("cmr_lv", "1"), WriterOptions()
    )
    seg = documents.segmentation
    phase_of = {
        (f.sop_instance_uid, f.frame_number): phase
        for phase in (ED, ES)
        for f in assembled.frames[phase]
    }
    for frame in seg.PerFrameFunctionalGroupsSequence:
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        reference = frame.DerivationImageSequence[0].SourceImageSequence[0]
        key = (str(reference.ReferencedSOPInstanceUID), reference.get("ReferencedFrameNumber"))
        assert phase_of[key] == (ED if number <= 2 else ES)
        source = next(s for s in sources if (s.dataset.SOPInstanceUID, s.frame_number) == key)
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        expected = (
            source.dataset.ImagePositionPatient
            if source.frame_number is None
            else source.dataset.PerFrameFunctionalGroupsSequence[source.frame_number - 1]
            .PlanePositionSequence[0]
            .ImagePositionPatient
        )
        assert np.allclose([float(v) for v in position], [float(v) for v in expected])

    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    assert dciodvfy_errors(path) == []
    report = tmp_path / "sr.dcm"
    documents.report.save_as(report)
    assert dciodvfy_errors(report) == []


def test_masks_read_back_per_phase(tmp_path: Path, phantom: CinePhantom) -> None:
    assembled, sources = cine_sources(tmp_path / "cine", phantom, enhanced=False)
    documents = write_results(
        sources, two_phase_result(phantom), AlgorithmInfo("cmr_lv", "1"), WriterOptions()
    )
    seg = hd.seg.Segmentation.from_dataset(documents.segmentation)
    for phase, numbers in ((ED, [1, 2]), (ES, [3, 4])):
        uids = [f.sop_instance_uid for f in assembled.frames[phase]]
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers)
        assert np.array_equal(pixels[..., 0], phantom.truths[phase] == 1)
        assert np.array_equal(pixels[..., 1], phantom.truths[phase] == 2)


def test_a_segment_in_both_phases_is_refused(tmp_path: Path, phantom: CinePhantom) -> None:
    _, sources = cine_sources(tmp_path / "cine", phantom, enhanced=False)
    result = two_phase_result(phantom)
    label_map = result.label_map.copy()
    label_map[label_map == 3] = 1  # the ED blood pool label in the ES half too
    mixed = dataclasses.replace(
        result,
        label_map=label_map,
        segments=result.segments[:2] + result.segments[3:],
        measurements=tuple(m for m in result.measurements if m.segment_label != 3),
    )
    with pytest.raises(WriterInputError, match="segment 1 has voxels in 2 source layers"):
        write_results(sources, mixed, AlgorithmInfo("cmr_lv", "1"), WriterOptions())


def test_planes_repeated_unevenly_are_refused(tmp_path: Path, phantom: CinePhantom) -> None:
    _, sources = cine_sources(tmp_path / "cine", phantom, enhanced=False)
    result = two_phase_result(phantom)
    uneven = dataclasses.replace(result, label_map=result.label_map[:-1])
    with pytest.raises(WriterInputError, match="repeat unevenly"):
        write_results(sources[:-1], uneven, AlgorithmInfo("cmr_lv", "1"), WriterOptions())
