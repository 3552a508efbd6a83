"""`iwuo train`: a thin wrapper over nnU-Net's own planning, preprocessing and training.

Why a wrapper at all: users want to train or fine-tune on CPU, and nnU-Net's command-line
trainer lookup imports every trainer variant (some need a torchvision that matches torch),
reads three environment variables, and reports failures as long tracebacks. This module checks
the dataset before nnU-Net starts, runs nnU-Net's steps in child processes with the variables
set, trains with `IWUOTrainer` (nnU-Net's base trainer with the epoch count as a parameter), and
returns a JSON-able result with the model folder and nnU-Net's own validation Dice per label.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import BadInputError, IWUOError
from .io_atomic import atomic_write_text


@dataclass
class SmallNet:
    """Plans edits that make a network small enough for CPU training."""

    features: tuple[int, ...] = (8, 16, 32, 64)
    patch_size: tuple[int, int, int] | None = None
    batch_size: int = 2
    dropout: float = 0.0


@dataclass
class TrainResult:
    model_folder: str
    folds: list[int]
    validation_dice: dict[str, dict[str, float]] = field(default_factory=dict)
    plans_edits: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def dataset_id_from_folder(folder: Path) -> int:
    match = re.match(r"Dataset(\d{3})_\w+$", folder.name)
    if not match:
        raise BadInputError(f"An nnU-Net raw dataset folder must be named DatasetXXX_Name (three digits); got '{folder.name}'.")
    return int(match.group(1))


def check_raw_dataset(folder: str | os.PathLike) -> dict:
    """Check an nnU-Net raw dataset before nnU-Net sees it; raise BadInputError naming the problem."""
    folder = Path(folder)
    dataset_id_from_folder(folder)
    ds_file = folder / "dataset.json"
    if not ds_file.is_file():
        raise BadInputError(f"{folder} has no dataset.json.")
    ds = json.loads(ds_file.read_text())
    ending = ds.get("file_ending", ".nii.gz")
    channels = ds.get("channel_names") or ds.get("modality")
    if not channels:
        raise BadInputError("dataset.json has no 'channel_names'.")
    label_values = set()
    for value in ds.get("labels", {}).values():
        label_values.update(value if isinstance(value, (list, tuple)) else [value])
    labels = sorted((folder / "labelsTr").glob(f"*{ending}"))
    if not labels:
        raise BadInputError(f"No label files ending in {ending} in {folder / 'labelsTr'}.")
    for label_path in labels:
        case = label_path.name[: -len(ending)]
        label_image = sitk.ReadImage(str(label_path))
        for index, channel in sorted(channels.items(), key=lambda kv: int(kv[0])):
            image_path = folder / "imagesTr" / f"{case}_{int(index):04d}{ending}"
            if not image_path.is_file():
                raise BadInputError(f"Case '{case}' is missing its {channel} image: expected {image_path}.")
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(image_path))
            reader.ReadImageInformation()
            if (reader.GetSize() != label_image.GetSize()
                    or not np.allclose(reader.GetSpacing(), label_image.GetSpacing(), atol=1e-4)
                    or not np.allclose(reader.GetOrigin(), label_image.GetOrigin(), atol=1e-3)
                    or not np.allclose(reader.GetDirection(), label_image.GetDirection(), atol=1e-4)):
                raise BadInputError(
                    f"Case '{case}': the {channel} image and the label have different geometry "
                    f"(size {reader.GetSize()} vs {label_image.GetSize()}, spacing {reader.GetSpacing()} vs "
                    f"{label_image.GetSpacing()}).")
        unknown = set(np.unique(sitk.GetArrayViewFromImage(label_image)).tolist()) - label_values
        if unknown:
            raise BadInputError(f"Case '{case}' has label values {sorted(unknown)} that dataset.json does not define "
                                f"(known: {sorted(label_values)}).")
    return ds


def nnunet_env(work_dir: Path, raw_parent: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(raw_parent), "nnUNet_preprocessed": str(work_dir / "preprocessed"),
        "nnUNet_results": str(work_dir / "results"), "nnUNet_def_n_proc": env.get("nnUNet_def_n_proc", "2"),
        "nnUNet_n_proc_DA": env.get("nnUNet_n_proc_DA", "1"), "nnUNet_compile": "f",
    })
    return env


def _run(args: list[str], env: dict[str, str], step: str, log_file: Path) -> None:
    """Run one nnU-Net step; on failure raise with the last lines of its output (the cause)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(args)}\n")
        log.flush()
        proc = subprocess.run(args, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise IWUOError(f"nnU-Net {step} failed (exit {proc.returncode}). Last lines of {log_file}:\n" + "\n".join(tail))


def edit_plans(plans_file: Path, configuration: str, net: SmallNet, new_configuration: str | None = None) -> dict:
    """Shrink the network of `configuration` in nnU-Net's plans (optionally as a new configuration)."""
    plans = json.loads(plans_file.read_text())
    config = plans["configurations"][configuration]
    arch = config["architecture"]["arch_kwargs"]
    n_stages = len(net.features)
    if arch["n_stages"] < n_stages:
        raise BadInputError(f"The planned network has {arch['n_stages']} stages; cannot use {n_stages} features.")
    edits = {"features_per_stage": list(net.features), "n_stages": n_stages,
             "kernel_sizes": arch["kernel_sizes"][:n_stages], "strides": arch["strides"][:n_stages],
             "n_conv_per_stage": arch["n_conv_per_stage"][:n_stages],
             "n_conv_per_stage_decoder": arch["n_conv_per_stage_decoder"][: n_stages - 1]}
    if net.dropout > 0:
        edits["dropout_op"] = "torch.nn.modules.dropout.Dropout3d"
        edits["dropout_op_kwargs"] = {"p": net.dropout, "inplace": True}
    target = new_configuration or configuration
    if new_configuration:
        plans["configurations"][new_configuration] = json.loads(json.dumps(config))
        config = plans["configurations"][new_configuration]
        arch = config["architecture"]["arch_kwargs"]
    arch.update(edits)
    if "dropout_op" in edits:
        req = config["architecture"].setdefault("_kw_requires_import", [])
        if "dropout_op" not in req:
            req.append("dropout_op")
    if net.patch_size:
        config["patch_size"] = list(net.patch_size)
    config["batch_size"] = net.batch_size
    atomic_write_text(plans_file, json.dumps(plans, indent=2))
    return {"configuration": target, **edits, "patch_size": config["patch_size"], "batch_size": net.batch_size}


def train(dataset_folder: str | os.PathLike, work_dir: str | os.PathLike, folds: list[int], epochs: int = 50,
          iterations_per_epoch: int = 50, configuration: str = "3d_fullres", device: str = "cpu",
          net: SmallNet | None = None, new_configuration: str | None = None, pretrained_weights: str | None = None,
          continue_training: bool = False, skip_preprocessing: bool = False, progress=None) -> TrainResult:
    """Plan, preprocess and train `folds` of an nnU-Net raw dataset; return the model folder."""
    dataset_folder = Path(dataset_folder).resolve()
    work_dir = Path(work_dir).resolve()
    check_raw_dataset(dataset_folder)
    dataset_id = dataset_id_from_folder(dataset_folder)
    env = nnunet_env(work_dir, dataset_folder.parent)
    log_file = work_dir / "train.log"
    py = sys.executable
    plans_file = work_dir / "preprocessed" / dataset_folder.name / "nnUNetPlans.json"
    if not (skip_preprocessing and plans_file.is_file()):
        if progress:
            progress(0.02, "nnU-Net planning and preprocessing")
        _run([py, "-c", "import sys; from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import "
              "plan_and_preprocess_entry as m; sys.argv[0]='nnUNetv2_plan_and_preprocess'; m()",
              "-d", str(dataset_id), "-c", "3d_fullres", "-np", "2", "-npfp", "2"], env, "planning/preprocessing", log_file)
    edits = {}
    train_configuration = configuration
    if net is not None:
        edits = edit_plans(plans_file, configuration, net, new_configuration)
        train_configuration = edits["configuration"]
    for i, fold in enumerate(folds):
        if progress:
            progress(0.05 + 0.9 * i / len(folds), f"training fold {fold} ({epochs} epochs)")
        args = [py, "-m", "IWUOSegmentationLib.nnunet_trainer", "--dataset", dataset_folder.name,
                "--configuration", train_configuration, "--fold", str(fold), "--epochs", str(epochs),
                "--iterations", str(iterations_per_epoch), "--device", device]
        if pretrained_weights:
            args += ["--pretrained-weights", str(pretrained_weights)]
        if continue_training:
            args += ["--continue"]
        child_env = dict(env)
        child_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                   env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        _run(args, child_env, f"training of fold {fold}", log_file)
    model_folder = work_dir / "results" / dataset_folder.name / f"IWUOTrainer__nnUNetPlans__{train_configuration}"
    result = TrainResult(model_folder=str(model_folder), folds=list(folds), plans_edits=edits)
    for fold in folds:
        summary = model_folder / f"fold_{fold}" / "validation" / "summary.json"
        if summary.is_file():
            data = json.loads(summary.read_text())
            result.validation_dice[str(fold)] = {k: round(float(v["Dice"]), 4) for k, v in data["mean"].items()}
    if progress:
        progress(1.0, "training finished")
    return result


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a checkpoint without the optimizer state (half the size, identical predictions)."""
    import torch

    checkpoint = torch.load(src, map_location="cpu", weights_only=False)
    checkpoint["optimizer_state"] = None
    checkpoint["grad_scaler_state"] = None
    tmp = Path(str(dst) + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, dst)


def export_model(model_folder: str | os.PathLike, dest: str | os.PathLike, folds: list[int]) -> Path:
    """Copy dataset.json, plans.json and slimmed final checkpoints of `folds` to `dest`."""
    model_folder, dest = Path(model_folder), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.json", "plans.json"):
        shutil.copy2(model_folder / name, dest / name)
    for fold in folds:
        (dest / f"fold_{fold}").mkdir(exist_ok=True)
        slim_checkpoint(model_folder / f"fold_{fold}" / "checkpoint_final.pth", dest / f"fold_{fold}" / "checkpoint_final.pth")
    return dest


def export_corrected_dataset(cases: list[dict], out_folder: str | os.PathLike, dataset_json: dict) -> Path:
    """Write expert-corrected cases as an nnU-Net raw dataset (imagesTr/labelsTr/dataset.json).

    Each case is {"name": str, "images": [paths in channel order], "label": path or sitk.Image}.
    """
    out = Path(out_folder)
    dataset_id_from_folder(out)
    ending = dataset_json.get("file_ending", ".nii.gz")
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    n_channels = len(dataset_json["channel_names"])
    for case in cases:
        if len(case["images"]) != n_channels:
            raise BadInputError(f"Case {case['name']} has {len(case['images'])} images; the dataset needs {n_channels}.")
        for c, image in enumerate(case["images"]):
            img = image if isinstance(image, sitk.Image) else sitk.ReadImage(str(image))
            sitk.WriteImage(img, str(out / "imagesTr" / f"{case['name']}_{c:04d}{ending}"))
        label = case["label"] if isinstance(case["label"], sitk.Image) else sitk.ReadImage(str(case["label"]))
        sitk.WriteImage(sitk.Cast(label, sitk.sitkUInt8), str(out / "labelsTr" / f"{case['name']}{ending}"))
    ds = dict(dataset_json)
    ds["numTraining"] = len(list((out / "labelsTr").glob(f"*{ending}")))
    ds["file_ending"] = ending
    atomic_write_text(out / "dataset.json", json.dumps(ds, indent=2))
    check_raw_dataset(out)
    return out
