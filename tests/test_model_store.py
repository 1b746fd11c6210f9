"""The model store: installing each published weight format, verify, remove, list."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.models import (
    MANIFEST_NAME,
    ModelError,
    ModelFormat,
    ModelInstallError,
    ModelManifest,
    ModelNotInstalledError,
    ModelStore,
)
from pipelines.models.manifest import read_manifest
from tests.support.model_sources import (
    LABELS,
    TRAINER_FOLDER,
    export_nnunet_zip,
    monai_spec,
    plain_spec,
    tiny_unet,
    write_monai_checkpoint,
    write_nnunet_results,
    write_onnx,
    write_spec,
    write_torchscript,
    zip_folder,
)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def monai_source(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "src"
    source.mkdir()
    return write_monai_checkpoint(source / "best_metric.pth"), monai_spec(source / "unet.yaml")


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_nnunet_results_folder_installs_what_inference_reads(
    store: ModelStore, tmp_path: Path
) -> None:
    results = write_nnunet_results(tmp_path / "Dataset901_Lungs", folds=(0, 1))
    model = store.install(results, "lungs")
    assert files_under(model.folder) == [
        MANIFEST_NAME,
        "weights/dataset.json",
        "weights/fold_0/checkpoint_final.pth",
        "weights/fold_1/checkpoint_final.pth",
        "weights/plans.json",
    ]
    manifest = model.manifest
    assert (manifest.format, manifest.labels, manifest.modality, manifest.version) == (
        ModelFormat.NNUNET_V2,
        LABELS,
        "CT",
        "1",
    )
    assert manifest.nnunet is not None
    assert (
        manifest.nnunet.trainer,
        manifest.nnunet.plans,
        manifest.nnunet.configuration,
        manifest.nnunet.folds,
        manifest.nnunet.results_folder,
    ) == ("nnUNetTrainer", "nnUNetPlans", "3d_fullres", (0, 1), "weights")
    assert manifest.source == str(results.resolve())


def test_manifest_records_sha256_of_each_file(store: ModelStore, tmp_path: Path) -> None:
    model = store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    recorded = {weight.path: weight.sha256 for weight in model.manifest.files}
    actual = {path: hashlib.sha256(model.path(path).read_bytes()).hexdigest() for path in recorded}
    assert recorded == actual
    assert read_manifest(model.folder / MANIFEST_NAME) == model.manifest


def test_nnunet_dataset_folder_with_one_trainer_folder_installs(
    store: ModelStore, tmp_path: Path
) -> None:
    dataset = tmp_path / "Dataset901_Lungs"
    write_nnunet_results(dataset)
    (dataset / "inference_information.json").write_text("{}", encoding="utf-8")
    assert store.install(dataset, "lungs").manifest.nnunet is not None


def test_nnunet_dataset_folder_with_two_trainer_folders_is_ambiguous(
    store: ModelStore, tmp_path: Path
) -> None:
    dataset = tmp_path / "Dataset901_Lungs"
    write_nnunet_results(dataset)
    write_nnunet_results(dataset, folder_name="nnUNetTrainer__nnUNetPlans__3d_lowres")
    with pytest.raises(ModelInstallError, match="holds 2 nnU-Net results folders"):
        store.install(dataset, "lungs")


def test_nnunet_region_labels_are_refused(store: ModelStore, tmp_path: Path) -> None:
    labels = {"background": 0, "lung_left": 1, "lungs": [1, 2]}
    results = write_nnunet_results(tmp_path / "Dataset902_Regions", labels=labels)
    with pytest.raises(ModelInstallError, match="'lungs' is a region"):
        store.install(results, "regions")


def test_nnunet_spec_renames_labels_and_sets_orientation(store: ModelStore, tmp_path: Path) -> None:
    labels = {"background": 0, "left lung": 1, "lung_right": 2}
    results = write_nnunet_results(tmp_path / "Dataset903_Names", labels=labels)
    spec = write_spec(tmp_path / "spec.yaml", labels={1: "lung_left"}, input={"orientation": "LPS"})
    manifest = store.install(results, "lungs", spec=spec).manifest
    assert manifest.labels == LABELS
    assert manifest.input is not None
    assert (manifest.input.orientation, manifest.input.patch_size) == ("LPS", (32, 24, 16))


def test_nnunet_export_zip_installs(store: ModelStore, tmp_path: Path) -> None:
    write_nnunet_results(tmp_path / "results" / "Dataset901_Lungs")
    archive = export_nnunet_zip(tmp_path / "results", "Dataset901_Lungs", tmp_path / "m.zip")
    model = store.install(archive, "lungs")
    assert "weights/fold_0/checkpoint_final.pth" in files_under(model.folder)
    assert model.manifest.source == f"{archive.resolve()}!/Dataset901_Lungs/{TRAINER_FOLDER}"


def test_monai_checkpoint_with_spec_installs(
    store: ModelStore, monai_source: tuple[Path, Path]
) -> None:
    checkpoint, spec = monai_source
    model = store.install(checkpoint, "unet", spec=spec)
    assert files_under(model.folder) == [MANIFEST_NAME, "weights/best_metric.pth"]
    manifest = model.manifest
    assert (manifest.format, manifest.version, manifest.labels) == (
        ModelFormat.MONAI,
        "2.1",
        LABELS,
    )
    assert manifest.network is not None
    assert manifest.network.name == "UNet"
    assert manifest.input is not None
    assert manifest.input.spacing_mm == (1.5, 1.5, 2.0)


def test_legacy_pickle_checkpoint_installs_as_monai(store: ModelStore, tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    torch.save(tiny_unet().state_dict(), path, _use_new_zipfile_serialization=False)
    model = store.install(path, "unet", spec=monai_spec(tmp_path / "spec.yaml"))
    assert model.manifest.format is ModelFormat.MONAI


def test_monai_checkpoint_without_spec_names_the_missing_fields(
    store: ModelStore, monai_source: tuple[Path, Path]
) -> None:
    checkpoint, _ = monai_source
    with pytest.raises(
        ModelInstallError, match=re.escape("needs --spec FILE.yaml with: network, labels, input")
    ):
        store.install(checkpoint, "unet")


def test_monai_spec_without_network_names_it(
    store: ModelStore, monai_source: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, _ = monai_source
    spec = monai_spec(tmp_path / "spec.yaml", network=None)
    with pytest.raises(ModelInstallError, match=r"needs these fields in its spec: network$"):
        store.install(checkpoint, "unet", spec=spec)


def test_monai_checkpoint_that_does_not_fit_the_network_is_refused(
    store: ModelStore, monai_source: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, _ = monai_source
    args = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [8, 16],
            "strides": [2], "num_res_units": 0}  # fmt: skip
    spec = monai_spec(tmp_path / "spec.yaml", network={"name": "UNet", "args": args})
    with pytest.raises(ModelInstallError, match="does not fit network UNet"):
        store.install(checkpoint, "unet", spec=spec)


def test_unknown_monai_network_class_is_refused(
    store: ModelStore, monai_source: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, _ = monai_source
    spec = monai_spec(tmp_path / "spec.yaml", network={"name": "UNetPlusPlusPlus", "args": {}})
    with pytest.raises(ModelInstallError, match="'UNetPlusPlusPlus' is not a class"):
        store.install(checkpoint, "unet", spec=spec)


def test_torchscript_file_installs_as_model_pt(store: ModelStore, tmp_path: Path) -> None:
    path = write_torchscript(tmp_path / "traced.pt")
    model = store.install(path, "ts", spec=plain_spec(tmp_path / "spec.yaml"))
    assert model.manifest.format is ModelFormat.TORCHSCRIPT
    assert files_under(model.folder) == [MANIFEST_NAME, "weights/model.pt"]


def test_onnx_file_installs_as_model_onnx(store: ModelStore, tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "exported.onnx")
    model = store.install(path, "onnx", spec=plain_spec(tmp_path / "spec.yaml"))
    assert model.manifest.format is ModelFormat.ONNX
    assert files_under(model.folder) == [MANIFEST_NAME, "weights/model.onnx"]


def test_onnx_with_fewer_outputs_than_labels_is_refused(store: ModelStore, tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "exported.onnx")
    spec = write_spec(
        tmp_path / "spec.yaml",
        labels={1: "lung_left", 2: "lung_right", 3: "airway"},
        input={"normalization": {"kind": "none"}, "patch_size": [8, 8, 8]},
    )
    with pytest.raises(
        ModelInstallError, match=re.escape("labels go up to 3 but model.onnx outputs 3 channels")
    ):
        store.install(path, "onnx", spec=spec)


def test_installed_model_folder_installs_into_another_store(
    store: ModelStore, monai_source: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, spec = monai_source
    first = store.install(checkpoint, "unet", spec=spec)
    other = ModelStore(tmp_path / "other-node")
    copied = other.install(first.folder, "unet_copy")
    assert copied.manifest.files == first.manifest.files
    assert copied.manifest.source == str(first.folder.resolve())
    assert other.verify("unet_copy") == []


def test_zip_of_checkpoint_and_spec_installs(
    store: ModelStore, monai_source: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, spec = monai_source
    spec.rename(checkpoint.parent / "spec.yaml")
    archive = zip_folder(checkpoint.parent, tmp_path / "unet.zip")
    model = store.install(archive, "unet")
    assert (model.manifest.format, model.manifest.source) == (
        ModelFormat.MONAI,
        f"{archive.resolve()}!/src/best_metric.pth",
    )


def test_zip_with_member_outside_is_refused_and_nothing_is_left(
    store: ModelStore, tmp_path: Path
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("model/model.onnx", b"x")
        writer.writestr("../evil", b"x")
    with pytest.raises(
        ModelInstallError, match=re.escape("member '../evil' points outside the archive")
    ):
        store.install(archive, "evil")
    assert not (tmp_path / "evil").exists()
    assert list(store.root.iterdir()) == []


def test_failed_install_leaves_no_folder(store: ModelStore, tmp_path: Path) -> None:
    path = write_torchscript(tmp_path / "traced.pt")
    spec = write_spec(tmp_path / "spec.yaml", labels=LABELS)
    with pytest.raises(ModelInstallError, match="needs these fields in its spec: input"):
        store.install(path, "ts", spec=spec)
    assert list(store.root.iterdir()) == []


def test_label_without_code_is_refused(store: ModelStore, tmp_path: Path) -> None:
    labels = {"background": 0, "lung_left": 1, "left_little_toe_nail": 2}
    results = write_nnunet_results(tmp_path / "Dataset904_Toe", labels=labels)
    with pytest.raises(ModelInstallError, match=r"labels without a code.*2 left_little_toe_nail"):
        store.install(results, "toe")


def test_intermediate_model_classes_need_no_code(store: ModelStore, tmp_path: Path) -> None:
    labels = {"background": 0, "disc": 1, "odd_vertebrae": 2}
    results = write_nnunet_results(tmp_path / "Dataset905_Steps", labels=labels)
    spec = write_spec(tmp_path / "spec.yaml", role="intermediate", modality="MR")

    model = store.install(results, "steps", spec=spec)

    assert (model.manifest.role, model.manifest.labels) == (
        "intermediate",
        {1: "disc", 2: "odd_vertebrae"},
    )
    assert store.get("steps").manifest.role == "intermediate"


def test_version_from_spec_and_option_must_agree(
    store: ModelStore, monai_source: tuple[Path, Path]
) -> None:
    checkpoint, spec = monai_source
    with pytest.raises(ModelInstallError, match=re.escape("the spec says 2.1, --version says 3")):
        store.install(checkpoint, "unet", spec=spec, version="3")


def test_existing_name_needs_replace(store: ModelStore, tmp_path: Path) -> None:
    store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    second = write_nnunet_results(tmp_path / "Dataset905_Lungs")
    with pytest.raises(ModelInstallError, match="'lungs' is already installed; give --replace"):
        store.install(second, "lungs", version="2")


def test_replace_installs_the_new_version(store: ModelStore, tmp_path: Path) -> None:
    store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    second = write_nnunet_results(tmp_path / "Dataset905_Lungs")
    assert store.install(second, "lungs", version="2", replace=True).manifest.version == "2"
    assert [path.name for path in store.root.iterdir()] == ["lungs"]


def test_forced_format_picks_among_several_weight_files(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_onnx(source / "model.onnx")
    write_torchscript(source / "model.pt")
    spec = plain_spec(tmp_path / "spec.yaml")
    model = store.install(source, "m", spec=spec, model_format=ModelFormat.ONNX)
    assert model.manifest.format is ModelFormat.ONNX


def test_several_weight_files_without_format_are_ambiguous(
    store: ModelStore, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_onnx(source / "model.onnx")
    write_torchscript(source / "model.pt")
    with pytest.raises(ModelInstallError, match="several weight files"):
        store.install(source, "m", spec=plain_spec(tmp_path / "spec.yaml"))


def test_verify_detects_a_changed_weight_file(store: ModelStore, tmp_path: Path) -> None:
    model = store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    checkpoint = model.path("weights/fold_0/checkpoint_final.pth")
    checkpoint.write_bytes(checkpoint.read_bytes() + b"\0")
    (problem,) = store.verify("lungs")
    assert problem.startswith("sha256 mismatch: weights/fold_0/checkpoint_final.pth")


def test_verify_detects_a_missing_file(store: ModelStore, tmp_path: Path) -> None:
    model = store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    model.path("weights/plans.json").unlink()
    assert store.verify("lungs") == ["missing file: weights/plans.json"]


def test_verify_of_an_intact_model_finds_nothing(store: ModelStore, tmp_path: Path) -> None:
    store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    assert store.verify("lungs") == []


def test_remove_deletes_the_model(store: ModelStore, tmp_path: Path) -> None:
    store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "lungs")
    store.remove("lungs")
    assert (store.has("lungs"), list(store.root.iterdir())) == (False, [])


def test_missing_model_error_says_how_to_install_it(store: ModelStore) -> None:
    with pytest.raises(ModelNotInstalledError) as caught:
        store.get("abdomenatlas")
    assert str(caught.value) == (
        "model 'abdomenatlas' is not installed:"
        " dicom-node models install SOURCE --name abdomenatlas"
    )


def test_a_name_outside_the_store_is_never_a_model(store: ModelStore, tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("name: x\n", encoding="utf-8")
    with pytest.raises(ModelNotInstalledError, match=re.escape("model '../' is not installed")):
        store.get("../")


def test_list_is_sorted_and_broken_folders_are_problems(store: ModelStore, tmp_path: Path) -> None:
    store.install(write_nnunet_results(tmp_path / "Dataset901_Lungs"), "zeta")
    store.install(write_nnunet_results(tmp_path / "Dataset902_Lungs"), "alpha")
    (store.root / "broken").mkdir()
    (store.root / "broken" / MANIFEST_NAME).write_text("name: broken\n", encoding="utf-8")
    assert [model.name for model in store.list()] == ["alpha", "zeta"]
    assert list(store.problems()) == ["broken"]


def test_get_of_a_broken_manifest_says_what_is_wrong(store: ModelStore) -> None:
    (store.root / "broken").mkdir(parents=True)
    (store.root / "broken" / MANIFEST_NAME).write_text("name: broken\n", encoding="utf-8")
    with pytest.raises(ModelError, match="version: Field required"):
        store.get("broken")


def test_manifest_needs_the_fields_its_format_lacks() -> None:
    files = [{"path": "weights/model.onnx", "sha256": "0" * 64}]
    with pytest.raises(ValueError, match="a onnx model needs: input"):
        ModelManifest.model_validate(
            {"name": "m", "version": "1", "format": "onnx", "labels": LABELS, "files": files}
        )


def test_manifest_yaml_round_trips(store: ModelStore, tmp_path: Path) -> None:
    model = store.install(
        write_onnx(tmp_path / "m.onnx"), "m", spec=plain_spec(tmp_path / "s.yaml")
    )
    data = yaml.safe_load((model.folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert data["labels"] == LABELS
    assert ModelManifest.model_validate(data) == model.manifest


def test_importing_the_store_does_not_import_torch() -> None:
    code = (
        "import sys, pipelines.models; print([m for m in ('torch', 'monai') if m in sys.modules])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_node_versions_routed_model_pipelines_without_importing_torch(
    tmp_path: Path, store: ModelStore, monai_source: tuple[Path, Path]
) -> None:
    weights, spec = monai_source
    store.install(weights, "abdomenatlas", spec=spec)  # the spec says version 2.1
    config = tmp_path / "node.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models_dir": str(store.root),
                "routes": [
                    {"name": "abdomen", "match": {"Modality": "CT"}, "pipeline": "ct_abdomen"},
                    {"name": "liver", "match": {"Modality": "CT"}, "pipeline": "ct_liver_tumor"},
                ],
            }
        ),
        "utf-8",
    )
    code = (
        "import sys; from pathlib import Path; from dicom_node.config import load_config;"
        "from dicom_node.jobs.intake import pipeline_versions;"
        f"print(pipeline_versions(load_config(Path({str(config)!r}))));"
        "print([m for m in ('torch', 'monai') if m in sys.modules])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert output == [
        "{'ct_abdomen': '1.0.0+abdomenatlas-2.1', "
        "'ct_liver_tumor': '1.0.0+lits_liver-missing+lits_tumor-missing'}",
        "[]",
    ]
