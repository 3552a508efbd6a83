"""Model folders, Dataset folders, zips, and safe checkpoint loading."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from IWUOSegmentationLib.errors import BadInputError, BadModelError, MissingInputError, UntrustedModelError
from IWUOSegmentationLib.nnunet.demo_model import DEMO_MODEL_ROOT, demo_model_folder
from IWUOSegmentationLib.nnunet.model_folder import check_channels, load_checkpoint, open_model


def test_trained_model_folder_is_described(demo_model):
    assert demo_model.channel_names == ["FLAIR", "T1c"]
    assert demo_model.is_region_based and demo_model.regions_class_order == [2, 1, 4]
    assert demo_model.output_names == ["whole_tumor", "tumor_core", "enhancing_tumor"]
    assert demo_model.written_labels == {"background": 0, "whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4}
    assert len(demo_model.folds) >= 2 and demo_model.file_ending == ".nii.gz"
    assert not demo_model.has_dropout
    assert open_model(demo_model_folder(dropout=True)).has_dropout


def test_dataset_folder_lists_configurations_and_lets_the_caller_choose():
    with pytest.raises(BadModelError, match="several configurations.*3d_fullres"):
        open_model(DEMO_MODEL_ROOT)
    chosen = open_model(DEMO_MODEL_ROOT, configuration="3d_fullres_dropout")
    assert chosen.configuration == "3d_fullres_dropout"
    with pytest.raises(BadModelError, match="not found"):
        open_model(DEMO_MODEL_ROOT, configuration="2d")


def _copy_model(tmp_path: Path) -> Path:
    dest = tmp_path / "Dataset900_IWUOPhantom" / demo_model_folder().name
    shutil.copytree(demo_model_folder(), dest)
    return dest


def test_missing_files_are_named(tmp_path):
    model = _copy_model(tmp_path)
    with pytest.raises(BadModelError, match="Fold.*9 have no"):
        open_model(model, folds=["9"])
    for ckpt in model.glob("fold_*/checkpoint_*.pth"):
        ckpt.unlink()
    with pytest.raises(BadModelError, match="No fold .* has a checkpoint"):
        open_model(model)
    (model / "plans.json").unlink()
    with pytest.raises(BadModelError, match="not an nnU-Net model folder|missing plans.json"):
        open_model(model)
    with pytest.raises(MissingInputError, match="does not exist"):  # a path typed wrong: bad input (2), not a bad model
        open_model(tmp_path / "nowhere")


def test_channel_count_mismatch_says_which_channels(demo_model):
    with pytest.raises(BadInputError, match="expects 2 input images \\(FLAIR, T1c\\)"):
        check_channels(demo_model, 1)


def _zip_model(zip_path: Path, model: Path, extra: dict[str, str] | None = None) -> None:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in model.rglob("*"):
            if path.is_file():
                archive.write(path, f"Dataset900_IWUOPhantom/{model.name}/{path.relative_to(model).as_posix()}")
        for name, text in (extra or {}).items():
            archive.writestr(name, text)


def test_model_zip_installs_and_unsafe_zips_are_refused(tmp_path):
    good = tmp_path / "model.zip"
    _zip_model(good, demo_model_folder())
    model = open_model(good, models_dir=tmp_path / "models")
    assert model.path.is_relative_to(tmp_path / "models") and model.folds
    for bad_name in ("../evil.txt", "/abs/evil.txt"):
        bad = tmp_path / "bad.zip"
        _zip_model(bad, demo_model_folder(), {bad_name: "x"})
        with pytest.raises(BadModelError, match="outside the models folder"):
            open_model(bad, models_dir=tmp_path / "models2")
        assert not (tmp_path / "evil.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("Dataset900_X/link")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(BadModelError, match="symbolic link"):
        open_model(link, models_dir=tmp_path / "models3")


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path):
    """300 MiB of zeros in a zip of under 1 MiB: refused from the sizes in its directory, nothing written."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("Dataset900_X/zeros.bin", "w") as f:
        for _ in range(300):
            f.write(bytes(2**20))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(BadModelError, match="zip bomb"):
        open_model(bomb, models_dir=tmp_path / "models")
    assert not (tmp_path / "models").exists()


class _Payload:
    """Pickles to a call that creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_without_running_its_code(tmp_path, demo_model):
    marker = tmp_path / "pwned"
    checkpoint = load_checkpoint(demo_model.checkpoint_path(demo_model.folds[0]))
    checkpoint["_best_ema"] = _Payload(str(marker))
    evil = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint, evil)
    with pytest.raises(UntrustedModelError, match="--trust-model"):
        load_checkpoint(evil)
    assert not marker.exists()
    torch.load(evil, map_location="cpu", weights_only=False)  # what nnU-Net's own loader does
    assert marker.exists(), "the payload is real: an unsafe loader runs it"
    os.unlink(marker)
    load_checkpoint(evil, trust_model=True)  # explicit opt-in
    assert marker.exists()


def test_genuine_checkpoint_loads_safely(demo_model):
    checkpoint = load_checkpoint(demo_model.checkpoint_path(demo_model.folds[0]))
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and "network_weights" in checkpoint
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"
