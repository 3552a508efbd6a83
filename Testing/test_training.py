"""`iwuo train`: dataset checks before nnU-Net starts, and a real tiny training run (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.cli import main
from IWUOSegmentationLib.data.phantom import write_phantoms
from IWUOSegmentationLib.errors import BadInputError
from IWUOSegmentationLib.nnunet.training import check_raw_dataset, export_corrected_dataset


@pytest.fixture
def raw_dataset(tmp_path):
    return write_phantoms(tmp_path, 2, seed=40, layout="nnunet", dataset_name="Dataset901_Check")


def test_valid_dataset_passes(raw_dataset):
    assert check_raw_dataset(raw_dataset)["channel_names"] == {"0": "FLAIR", "1": "T1c"}


def test_mismatched_image_and_label_geometry_is_refused(raw_dataset):
    path = raw_dataset / "imagesTr" / "phantom_0040_0001.nii.gz"
    image = sitk.ReadImage(str(path))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))
    with pytest.raises(BadInputError, match="phantom_0040.*T1c.*different geometry"):
        check_raw_dataset(raw_dataset)


def test_missing_channel_file_is_named(raw_dataset):
    (raw_dataset / "imagesTr" / "phantom_0041_0000.nii.gz").unlink()
    with pytest.raises(BadInputError, match="phantom_0041.*missing its FLAIR image"):
        check_raw_dataset(raw_dataset)


def test_label_outside_dataset_json_is_refused(raw_dataset):
    path = raw_dataset / "labelsTr" / "phantom_0040.nii.gz"
    label = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 7
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(label)
    sitk.WriteImage(out, str(path))
    with pytest.raises(BadInputError, match=r"label values \[7\]"):
        check_raw_dataset(raw_dataset)


def test_cli_reports_bad_dataset_with_exit_code_2(raw_dataset, tmp_path, capsys):
    (raw_dataset / "dataset.json").unlink()
    assert main(["--progress", "none", "train", "--dataset", str(raw_dataset), "--work", str(tmp_path / "w")]) == 2
    assert "has no dataset.json" in capsys.readouterr().err


def test_corrected_cases_export_as_nnunet_dataset(tmp_path, raw_dataset):
    images = [raw_dataset / "imagesTr" / f"phantom_0040_000{c}.nii.gz" for c in (0, 1)]
    label = sitk.ReadImage(str(raw_dataset / "labelsTr" / "phantom_0040.nii.gz"))
    ds = json.loads((raw_dataset / "dataset.json").read_text())
    corrected = sitk.GetArrayFromImage(label)
    corrected[corrected.shape[0] // 2, 10:20, 10:20] = 4  # an expert's edit
    corrected_label = sitk.GetImageFromArray(corrected)
    corrected_label.CopyInformation(label)
    out = export_corrected_dataset([{"name": "corrected_001", "images": images, "label": corrected_label}],
                                   tmp_path / "Dataset902_Corrected", ds)
    exported = json.loads((out / "dataset.json").read_text())
    assert exported["numTraining"] == 1
    assert {k: exported[k] for k in ("channel_names", "labels", "file_ending")} == \
        {k: ds[k] for k in ("channel_names", "labels", "file_ending")}
    for c, source in enumerate(images):  # each channel exported under its nnU-Net index, voxels and grid kept
        written = sitk.ReadImage(str(out / "imagesTr" / f"corrected_001_{c:04d}.nii.gz"))
        original = sitk.ReadImage(str(source))
        assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(original))
        assert written.GetSpacing() == original.GetSpacing() and written.GetOrigin() == original.GetOrigin()
    written_label = sitk.ReadImage(str(out / "labelsTr" / "corrected_001.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(written_label), corrected)  # the corrected label, not the original
    assert written_label.GetPixelID() == sitk.sitkUInt8 and written_label.GetSpacing() == label.GetSpacing()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "corrected_001.nii.gz", "corrected_001_0000.nii.gz", "corrected_001_0001.nii.gz", "dataset.json"]
    with pytest.raises(BadInputError, match="has 1 images"):
        export_corrected_dataset([{"name": "x", "images": images[:1], "label": label}], tmp_path / "Dataset903_X", ds)


@pytest.mark.slow
def test_train_tiny_model_end_to_end_then_analyze(tmp_path):
    """Real nnU-Net planning, preprocessing and training on CPU; the folder is usable by iwuo analyze."""
    raw = write_phantoms(tmp_path / "raw", 6, seed=50, layout="nnunet", dataset_name="Dataset904_Tiny",
                         spacing=(4.0, 4.0, 4.0), region_based=False)
    code = main(["--progress", "none", "train", "--dataset", str(raw), "--work", str(tmp_path / "work"),
                 "--folds", "0", "--epochs", "2", "--iterations", "4", "--features", "4", "8", "16",
                 "--patch-size", "32", "32", "32", "--batch-size", "2"])
    assert code == 0
    model = tmp_path / "work" / "results" / "Dataset904_Tiny" / "IWUOTrainer__nnUNetPlans__3d_fullres"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    summary = json.loads((model / "fold_0" / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3", "4"}  # nnU-Net's validation of every label of dataset.json
    assert all(0.0 <= m["Dice"] <= 1.0 for m in summary["mean"].values() if m["Dice"] == m["Dice"])
    case = tmp_path / "raw" / "Dataset904_Tiny" / "imagesTr"
    out = tmp_path / "analysis"
    code = main(["--progress", "none", "analyze", "--model", str(model), "--input", str(case / "phantom_0050_0000.nii.gz"),
                 str(case / "phantom_0050_0001.nii.gz"), "--output", str(out), "--device", "cpu",
                 "--members", "flips"])
    assert code == 0
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation.nii.gz")))
    assert seg.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(case / "phantom_0050_0000.nii.gz"))).shape
    assert set(np.unique(seg).tolist()) <= {0, 1, 2, 3, 4}
