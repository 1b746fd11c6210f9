"""Cine assembly: a short-axis cine (single-frame MR or one Enhanced MR) becomes slices x phases
on one grid, whatever the file order; a missing or doubled phase and unordered frames are
refused with a named reason."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.errors import VolumeAssemblyError
from dicom_node.phantom_cine import CinePhantom, make_cine, write_cine
from dicom_node.series.assembly import assemble_series
from dicom_node.series.cine import AssembledCine, assemble_cine
from dicom_node.series.geometry import AssemblyRejection

PHASES, SLICES = 20, 10


@pytest.fixture(scope="module")
def phantom() -> CinePhantom:
    return make_cine(seed=3, phases=PHASES, slices=SLICES, matrix=48, pixel_mm=5.0)


def assert_matches(assembled: AssembledCine, phantom: CinePhantom) -> None:
    cine = assembled.cine
    assert len(cine.phases) == PHASES
    for phase, (got, expected) in enumerate(zip(cine.phases, phantom.cine.phases, strict=True)):
        assert np.array_equal(got.array, expected.array), phase
        assert np.allclose(got.direction, expected.direction, atol=1e-5)
        assert got.spacing == pytest.approx(expected.spacing)
        assert np.allclose(got.origin, expected.origin, atol=1e-4)
    assert cine.trigger_times_ms == pytest.approx(phantom.cine.trigger_times_ms, abs=1e-3)
    assert all(phase.modality == "MR" for phase in cine.phases)


def test_single_frame_cine_becomes_slices_by_phases(tmp_path: Path, phantom: CinePhantom) -> None:
    paths = write_cine(tmp_path, phantom)
    random.Random(1).shuffle(paths)  # the order files arrive in does not matter

    assembled = assemble_cine(paths, decode_workers=1)

    assert_matches(assembled, phantom)
    # every voxel slice knows its source instance: phase 7, slice 4 is the file written so
    (source,) = {assembled.frames[7][4]}
    header = assembled.headers[source.sop_instance_uid]
    assert float(header.TriggerTime) == pytest.approx(phantom.slice_trigger_times_ms[7, 4])
    position = np.asarray(header.ImagePositionPatient, dtype=float)
    assert np.allclose(position, phantom.cine.grid.index_to_world((4, 0, 0)), atol=1e-4)


def test_enhanced_mr_cine_becomes_slices_by_phases(tmp_path: Path, phantom: CinePhantom) -> None:
    (path,) = write_cine(tmp_path, phantom, enhanced=True)

    assembled = assemble_cine([path], decode_workers=1)

    assert_matches(assembled, phantom)
    frame = assembled.frames[3][6]
    assert frame.frame_number == 6 * PHASES + 3 + 1  # written slice by slice, phases inside


def test_slices_written_apex_first_give_the_same_cine(tmp_path: Path, phantom: CinePhantom) -> None:
    paths = write_cine(tmp_path, phantom)
    by_slice = sorted(paths, key=lambda p: -float(pydicom.dcmread(p).SliceLocation))

    assert_matches(assemble_cine(by_slice, decode_workers=1), phantom)


def test_a_missing_phase_at_one_slice_is_refused(tmp_path: Path, phantom: CinePhantom) -> None:
    paths = write_cine(tmp_path, phantom)
    dropped = next(p for p in paths if pydicom.dcmread(p).InstanceNumber == 2 * PHASES + 5)
    paths.remove(dropped)

    with pytest.raises(VolumeAssemblyError) as caught:
        assemble_cine(paths, decode_workers=1)

    assert caught.value.reason is AssemblyRejection.CINE_MISSING_PHASE
    assert f"has {PHASES - 1}, the other {SLICES - 1} have {PHASES}" in str(caught.value)


def test_a_phase_missing_everywhere_leaves_a_shorter_cine(
    tmp_path: Path, phantom: CinePhantom
) -> None:
    kept = [k for k in range(PHASES) if k != 9]
    assembled = assemble_cine(write_cine(tmp_path, phantom, phases=kept), decode_workers=1)
    assert len(assembled.cine.phases) == PHASES - 1
    assert np.array_equal(assembled.cine.phases[9].array, phantom.cine.phases[10].array)


def test_frames_without_timing_are_refused(tmp_path: Path, phantom: CinePhantom) -> None:
    paths = write_cine(tmp_path, phantom)
    for path in paths:
        dataset = pydicom.dcmread(path)
        del dataset.TriggerTime
        dataset.save_as(path)

    with pytest.raises(VolumeAssemblyError) as caught:
        assemble_cine(paths, decode_workers=1)

    assert caught.value.reason is AssemblyRejection.CINE_UNORDERED


def test_two_frames_of_one_phase_are_refused(tmp_path: Path, phantom: CinePhantom) -> None:
    paths = write_cine(tmp_path, phantom)
    first, second = (pydicom.dcmread(p) for p in paths[:2])  # slice 0, phases 0 and 1
    second.TriggerTime = first.TriggerTime
    second.save_as(paths[1])

    with pytest.raises(VolumeAssemblyError) as caught:
        assemble_cine(paths, decode_workers=1)

    assert caught.value.reason is AssemblyRejection.CINE_DUPLICATE_PHASE


def test_a_cine_is_not_one_volume(tmp_path: Path, phantom: CinePhantom) -> None:
    with pytest.raises(VolumeAssemblyError) as caught:
        assemble_series(write_cine(tmp_path, phantom), decode_workers=1)
    assert caught.value.reason is AssemblyRejection.DUPLICATE_POSITION
