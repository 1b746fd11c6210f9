"""The torso phantom: a valid CT series, ground truth that ct_basic reproduces, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicom_node.cli import main
from dicom_node.phantom import make_torso, write_labels, write_phantom_series, write_series
from pipelines import ImageVolume, SeriesFacts
from pipelines.ct_basic import LABELS, CtBasicPipeline
from tests.support.results import dciodvfy_errors, dice

# The whole torso (neck base to upper abdomen, 300 mm) at 3 mm: fast, and every structure in.
TORSO_SHAPE = (100, 128, 128)
TORSO_SPACING = (3.0, 3.0, 3.0)


def test_series_passes_dciodvfy(tmp_path: Path) -> None:
    paths = write_phantom_series(tmp_path, shape=(3, 64, 64), spacing=(5.0, 6.0, 6.0), seed=1)
    errors = {path.name: dciodvfy_errors(path) for path in paths}
    assert not any(errors.values()), errors


def test_series_holds_the_volume_at_its_positions(tmp_path: Path) -> None:
    volume, _ = make_torso((4, 32, 48), (2.5, 8.0, 8.0), seed=2)
    paths = write_series(tmp_path, volume)
    for index, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        hu = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
        assert np.array_equal(hu, volume.array[index])
        position = np.asarray(dataset.ImagePositionPatient, dtype=float)
        assert np.allclose(position, volume.index_to_world((index, 0, 0)))
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in first.PixelSpacing] == [8.0, 8.0]
    assert (first.PatientName, first.PatientPosition) == ("PHANTOM^TORSO", "HFS")


def test_sagittal_mr_series_is_valid_and_reads_back_voxel_for_voxel(tmp_path: Path) -> None:
    from dicom_node.phantom_spine import make_spine
    from dicom_node.series.assembly import assemble_series

    volume, _ = make_spine((6, 96, 64), seed=3)
    paths = write_series(tmp_path, volume, body_part="LSPINE")
    assert dciodvfy_errors(paths[0]) == []
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert (first.SOPClassUID.name, first.Modality) == ("MR Image Storage", "MR")
    assert [float(v) for v in first.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assembled = assemble_series(paths, decode_workers=1).volume
    assert np.array_equal(assembled.array, volume.array)
    assert assembled.direction == volume.direction
    assert np.allclose(assembled.origin, volume.origin)


def test_each_series_gets_fresh_uids(tmp_path: Path) -> None:
    first = write_phantom_series(tmp_path / "a", shape=(1, 16, 16), spacing=(3.0, 24.0, 24.0))
    second = write_phantom_series(tmp_path / "b", shape=(1, 16, 16), spacing=(3.0, 24.0, 24.0))
    a, b = (pydicom.dcmread(paths[0], stop_before_pixels=True) for paths in (first, second))
    for keyword in (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "SOPInstanceUID",
    ):
        assert a[keyword].value != b[keyword].value, keyword


def test_same_seed_draws_the_same_torso() -> None:
    one, truth_one = make_torso((6, 32, 32), (5.0, 12.0, 12.0), seed=4)
    two, truth_two = make_torso((6, 32, 32), (5.0, 12.0, 12.0), seed=4)
    assert np.array_equal(one.array, two.array)
    assert np.array_equal(truth_one, truth_two)


def test_truth_has_every_segment_on_its_side() -> None:
    volume, truth = make_torso(TORSO_SHAPE, TORSO_SPACING, seed=0)
    assert set(np.unique(truth).tolist()) == {0, *LABELS.values()}
    for name, sign in (("lung_left", 1.0), ("lung_right", -1.0)):
        centre = np.argwhere(truth == LABELS[name]).mean(axis=0)
        assert sign * volume.index_to_world(centre)[0] > 50.0, name  # LPS: +x is left


def test_ct_basic_reproduces_the_ground_truth() -> None:
    volume, truth = make_torso(TORSO_SHAPE, TORSO_SPACING, seed=5)
    result = CtBasicPipeline().run(volume, SeriesFacts(modality="CT"))
    scores = {
        name: dice(result.label_map == label, truth == label) for name, label in LABELS.items()
    }
    assert min(scores.values()) >= 0.95, {name: round(score, 4) for name, score in scores.items()}
    assert result.notes == ()


def test_stomach_gas_below_the_lungs_is_no_lung() -> None:
    volume, truth = make_torso(TORSO_SHAPE, TORSO_SPACING, seed=6)
    first = 88  # 264 mm down: below the lung bases, through the stomach and its gas bubble
    abdomen = ImageVolume(
        volume.array[first:],
        tuple(float(v) for v in volume.index_to_world((first, 0, 0))),
        volume.spacing,
        volume.direction,
        "CT",
    )
    assert np.count_nonzero(abdomen.array < -900) > 0  # the bubble is there
    result = CtBasicPipeline().run(abdomen, SeriesFacts(modality="CT"))
    assert not np.isin(result.label_map, [LABELS["lung_left"], LABELS["lung_right"]]).any()
    assert "no lungs in the field of view" in result.notes
    body = LABELS["body"]
    assert dice(result.label_map == body, truth[first:] == body) >= 0.95


def test_cli_writes_a_series_pydicom_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, labels = tmp_path / "series", tmp_path / "truth.npy"
    arguments = ["--size", "48", "--slices", "6", "--seed", "3", "--labels", str(labels)]
    assert main(["phantom", "--out", str(out), *arguments]) == 0
    files = sorted(out.iterdir())
    datasets = [pydicom.dcmread(path) for path in files]
    assert len(datasets) == 6
    assert {str(ds.SeriesInstanceUID) for ds in datasets} == {str(datasets[0].SeriesInstanceUID)}
    assert all(ds.pixel_array.shape == (48, 48) for ds in datasets)
    assert np.load(labels).shape == (6, 48, 48)
    assert "wrote 6 CT files" in capsys.readouterr().out


def test_cli_refuses_a_folder_that_holds_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "other.dcm").write_bytes(b"")
    assert main(["phantom", "--out", str(tmp_path), "--size", "16", "--slices", "1"]) == 1
    assert "not an empty folder" in capsys.readouterr().err


def test_labels_as_nifti_keep_the_geometry(tmp_path: Path) -> None:
    volume, truth = make_torso((5, 24, 32), (4.0, 10.0, 10.0), seed=0)
    path = tmp_path / "truth.nii.gz"
    write_labels(path, truth, volume)
    image = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(image), truth)
    assert np.allclose(image.GetOrigin(), volume.origin)
    assert np.allclose(image.GetSpacing(), volume.spacing[::-1])
    last = (4, 23, 31)
    assert np.allclose(image.TransformIndexToPhysicalPoint(last[::-1]), volume.index_to_world(last))
