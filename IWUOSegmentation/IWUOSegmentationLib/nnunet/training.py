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

from ..errors import BadInputError, IWUOError, MissingInputError
from ..storage.atomic_files import atomic_write_file, atomic_write_text


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
    folds: list
    validation_dice: dict[str, dict[str, float]] = field(default_factory=dict)
    plans_edits: dict = field(default_factory=dict)
    plans: str = "nnUNetPlans"
    plans_from: str | None = None  # the pretrained model whose plans were used (None: planned for this dataset)
    splits: str | None = None  # how the folds were split when the dataset has fewer cases than nnU-Net's 5 folds
    training: dict = field(default_factory=dict)  # fold -> iwuo_training.json of that fold

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


@dataclass
class Pretrained:
    """A pretrained model to fine-tune: its checkpoint, plans, configuration and dataset.json."""

    checkpoint: Path
    plans: dict
    configuration: str
    dataset_json: dict
    source: str  # the model folder (or checkpoint) the user named


def parse_fold(fold: int | str) -> int | str:
    """A fold as nnU-Net takes it: a number 0, 1, ... or "all" (train on every case)."""
    if str(fold).lower() == "all":
        return "all"
    if not str(fold).isdigit():
        raise BadInputError(f"A fold is a number (0, 1, ...) or 'all', not {fold!r}.")
    return int(fold)


def resolve_pretrained(path: str | os.PathLike) -> Pretrained:
    """A model folder (its `all` fold, else its first), a fold_X folder or a checkpoint file, as a Pretrained.

    Plans, configuration and dataset.json come from the model folder when the checkpoint sits in
    one, else from the checkpoint itself (nnU-Net stores them in `init_args`).
    """
    from .model_folder import _CONFIG_RE, CHECKPOINT_NAMES

    path = Path(path).resolve()
    if not path.exists():
        raise MissingInputError(f"Pretrained weights not found: {path} does not exist.")
    if path.is_dir():
        folds = [path] if path.name.startswith("fold_") else sorted(
            path.glob("fold_*"), key=lambda p: (p.name != "fold_all", p.name))
        checkpoints = [f / name for f in folds for name in CHECKPOINT_NAMES if (f / name).is_file()]
        if not checkpoints:
            raise BadInputError(f"{path} has no fold with checkpoint_final.pth or checkpoint_best.pth; give a model "
                                "folder (trainer__plans__configuration), one of its fold_X folders or a .pth file.")
        checkpoint = checkpoints[0]
    else:
        checkpoint = path
    model_dir = checkpoint.parent.parent
    match = _CONFIG_RE.match(model_dir.name)
    if (model_dir / "plans.json").is_file() and (model_dir / "dataset.json").is_file() and match:
        plans, dataset_json = (_read_json(model_dir / name) for name in ("plans.json", "dataset.json"))
        configuration = match.group("configuration")
    else:
        from .model_folder import load_checkpoint

        init_args = load_checkpoint(checkpoint).get("init_args") or {}
        if not {"plans", "configuration", "dataset_json"} <= set(init_args):
            raise BadInputError(f"{checkpoint} is neither inside an nnU-Net model folder (plans.json, dataset.json) "
                                "nor a checkpoint that records its plans: fine-tuning needs the model's plans.")
        plans, configuration, dataset_json = init_args["plans"], init_args["configuration"], init_args["dataset_json"]
    if configuration not in plans.get("configurations", {}):
        raise BadInputError(f"The pretrained plans have no configuration '{configuration}'.")
    return Pretrained(checkpoint=checkpoint, plans=plans, configuration=configuration, dataset_json=dataset_json,
                      source=str(path))


def _read_json(path: Path) -> dict:
    """A JSON file the user gave (a dataset's or a pretrained model's); a garbled one is one line naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path} cannot be read as JSON ({exc}).") from exc


def dataset_id_from_folder(folder: Path) -> int:
    match = re.match(r"Dataset(\d{3})_\w+$", folder.name)
    if not match:
        raise BadInputError(f"An nnU-Net raw dataset folder must be named DatasetXXX_Name (three digits); got '{folder.name}'.")
    return int(match.group(1))


def _label_values(dataset_json: dict) -> set[int]:
    values = set()
    for value in dataset_json.get("labels", {}).values():
        values.update(value if isinstance(value, (list, tuple)) else [value])
    return {int(v) for v in values}


def check_raw_dataset(folder: str | os.PathLike, model_dataset_json: dict | None = None) -> dict:
    """Check an nnU-Net raw dataset before nnU-Net sees it; raise BadInputError naming the problem in one line.

    With `model_dataset_json` (a model to fine-tune), the channels must be the model's and the
    label values ones its outputs know.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"Dataset folder {folder} does not exist.")
    dataset_id_from_folder(folder)
    ds_file = folder / "dataset.json"
    if not ds_file.is_file():
        raise BadInputError(f"{folder} has no dataset.json.")
    ds = _read_json(ds_file)
    ending = ds.get("file_ending", ".nii.gz")
    channels = ds.get("channel_names") or ds.get("modality")
    if not channels:
        raise BadInputError("dataset.json has no 'channel_names'.")
    label_values = _label_values(ds)
    if model_dataset_json is not None:
        model_channels = model_dataset_json.get("channel_names") or model_dataset_json.get("modality") or {}
        if len(model_channels) != len(channels):
            raise BadInputError(f"The dataset has {len(channels)} channel(s) ({', '.join(channels.values())}) but the "
                                f"pretrained model takes {len(model_channels)} ({', '.join(model_channels.values())}).")
        unknown = label_values - _label_values(model_dataset_json)
        if unknown:
            raise BadInputError(f"dataset.json defines label values {sorted(unknown)} that the pretrained model's "
                                f"labels do not ({sorted(_label_values(model_dataset_json))}).")
    labels = sorted((folder / "labelsTr").glob(f"*{ending}"))
    if not labels:
        raise BadInputError(f"The dataset has no training cases: no label files ending in {ending} in "
                            f"{folder / 'labelsTr'} (at least 1 is needed).")
    for label_path in labels:
        case = label_path.name[: -len(ending)]
        label_image = sitk.ReadImage(str(label_path))
        extra = (folder / "imagesTr" / f"{case}_{len(channels):04d}{ending}")
        if extra.is_file():
            raise BadInputError(f"Case '{case}' has an image for channel {len(channels)} ({extra.name}) but dataset.json "
                                f"names {len(channels)} channel(s): {', '.join(channels.values())}.")
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


def case_identifiers(folder: Path, dataset_json: dict) -> list[str]:
    ending = dataset_json.get("file_ending", ".nii.gz")
    return sorted(p.name[: -len(ending)] for p in (folder / "labelsTr").glob(f"*{ending}"))


def write_small_splits(preprocessed: Path, cases: list[str], folds: list) -> str | None:
    """splits_final.json for fewer cases than nnU-Net's 5 folds, which its own 5-fold split cannot make.

    2-4 cases: leave-one-out (fold i validates on case i); 1 case: one fold that trains and validates
    on it. Returns a sentence saying which, or None when nnU-Net's own 5-fold split applies.
    """
    numbered = [f for f in folds if f != "all"]
    if len(cases) >= 5 or not numbered:
        return None
    if len(cases) == 1:
        splits = [{"train": cases, "val": cases}]
        text = "1 case: fold 0 trains and validates on it (validation Dice is not a test)"
    else:
        splits = [{"train": [c for c in cases if c != held], "val": [held]} for held in cases]
        text = f"{len(cases)} cases: leave-one-out splits_final.json, fold i validates on case i"
    too_high = [f for f in numbered if f >= len(splits)]
    if too_high:
        raise BadInputError(f"Fold {too_high[0]} does not exist with {len(cases)} case(s): {text}; use folds "
                            f"0-{len(splits) - 1} or --folds all.")
    preprocessed.mkdir(parents=True, exist_ok=True)
    atomic_write_text(preprocessed / "splits_final.json", json.dumps(splits, indent=2))
    return text


def plans_identifier_from(pretrained: Pretrained) -> str:
    """nnU-Net's naming for moved plans: <source plans>From<source dataset id>."""
    name = pretrained.plans.get("plans_name", "nnUNetPlans")
    match = re.match(r"Dataset(\d{3})_", str(pretrained.plans.get("dataset_name", "")))
    return f"{name}From{match.group(1) if match else 'Pretrained'}"


def move_plans(pretrained: Pretrained, dataset_folder: Path, preprocessed: Path, identifier: str) -> Path:
    """The pretrained model's plans as this dataset's plans, as nnUNetv2_move_plans_between_datasets writes them.

    Same target spacing, normalisation, patch and network, so the pretrained weights see data as
    they were trained on it; only the dataset name, the plans name, the preprocessed-data folder
    names and the image reader change.
    """
    plans = json.loads(json.dumps(pretrained.plans))
    source = plans.get("plans_name", "nnUNetPlans")
    plans["dataset_name"] = dataset_folder.name
    plans["plans_name"] = identifier
    for config in plans["configurations"].values():
        old = config.get("data_identifier")
        if old:
            config["data_identifier"] = identifier + old[len(source):] if old.startswith(source) else f"{identifier}_{old}"
    ending = json.loads((dataset_folder / "dataset.json").read_text()).get("file_ending", ".nii.gz")
    if ending in (".nii.gz", ".nii", ".nrrd", ".mha", ".gipl"):
        plans["image_reader_writer"] = "SimpleITKIO"
    preprocessed.mkdir(parents=True, exist_ok=True)
    target = preprocessed / f"{identifier}.json"
    atomic_write_text(target, json.dumps(plans, indent=2))
    return target


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


def _nnunet_step(entry: str, name: str, args: list[str]) -> list[str]:
    """Command line running one of nnU-Net's entry points (`module:function`) as `name` in a child Python."""
    module, function = entry.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function} as m; sys.argv[0]={name!r}; m()", *args]


def train(dataset_folder: str | os.PathLike, work_dir: str | os.PathLike, folds: list, epochs: int = 50,
          iterations_per_epoch: int = 50, configuration: str | None = None, device: str = "cpu",
          net: SmallNet | None = None, new_configuration: str | None = None, pretrained_weights: str | None = None,
          continue_training: bool = False, skip_preprocessing: bool = False, final_validation: bool = True,
          initial_lr: float | None = None, trust_model: bool = False, progress=None) -> TrainResult:
    """Plan (or take a pretrained model's plans), preprocess and train `folds` of an nnU-Net raw dataset.

    `folds` holds fold numbers and/or "all". With `pretrained_weights` (a model folder, fold folder
    or checkpoint) the dataset is preprocessed with that model's plans and training starts from
    its weights: a fine-tune. Returns the model folder, ready for `iwuo analyze`.
    """
    dataset_folder = Path(dataset_folder).resolve()
    work_dir = Path(work_dir).resolve()
    folds = [parse_fold(f) for f in folds]
    if not folds:
        raise BadInputError("No fold to train: give --folds 0 (or several, or all).")
    pretrained = resolve_pretrained(pretrained_weights) if pretrained_weights else None
    if pretrained and net is not None:
        raise BadInputError("--features/--patch-size/--dropout change the network, so the pretrained weights would not "
                            "fit: a fine-tune keeps the pretrained model's network; leave them out.")
    if pretrained and continue_training:
        raise BadInputError("--continue resumes this run's own checkpoint; it cannot start from --pretrained-weights.")
    ds = check_raw_dataset(dataset_folder, pretrained.dataset_json if pretrained else None)
    cases = case_identifiers(dataset_folder, ds)
    dataset_id = dataset_id_from_folder(dataset_folder)
    env = nnunet_env(work_dir, dataset_folder.parent)
    log_file = work_dir / "train.log"
    preprocessed = work_dir / "preprocessed" / dataset_folder.name
    if pretrained:
        plans_name = plans_identifier_from(pretrained)
        configuration = configuration or pretrained.configuration
        if configuration not in pretrained.plans["configurations"]:
            raise BadInputError(f"The pretrained plans have no configuration '{configuration}' "
                                f"({', '.join(pretrained.plans['configurations'])}).")
    else:
        plans_name, configuration = "nnUNetPlans", configuration or "3d_fullres"
    plans_file = preprocessed / f"{plans_name}.json"
    nnunet_args = ["-d", str(dataset_id), "-np", "2"]
    if not (skip_preprocessing and plans_file.is_file()):
        if progress:
            progress(0.02, "nnU-Net planning and preprocessing" if not pretrained else
                     "nnU-Net preprocessing with the pretrained model's plans")
        if pretrained:
            _run(_nnunet_step("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints:extract_fingerprint_entry",
                              "nnUNetv2_extract_fingerprint", [*nnunet_args, "--clean"]), env, "fingerprint extraction", log_file)
            preprocessed.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dataset_folder / "dataset.json", preprocessed / "dataset.json")
            move_plans(pretrained, dataset_folder, preprocessed, plans_name)
            _run(_nnunet_step("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints:preprocess_entry",
                              "nnUNetv2_preprocess", [*nnunet_args, "-plans_name", plans_name, "-c", configuration]),
                 env, "preprocessing", log_file)
        else:
            _run(_nnunet_step("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints:plan_and_preprocess_entry",
                              "nnUNetv2_plan_and_preprocess", [*nnunet_args, "-c", "3d_fullres", "-npfp", "2"]),
                 env, "planning/preprocessing", log_file)
    splits = write_small_splits(preprocessed, cases, folds)
    edits = {}
    train_configuration = configuration
    if net is not None:
        edits = edit_plans(plans_file, configuration, net, new_configuration)
        train_configuration = edits["configuration"]
    for i, fold in enumerate(folds):
        if progress:
            progress(0.05 + 0.9 * i / len(folds), f"training fold {fold} ({epochs} epochs)")
        args = [sys.executable, "-m", "IWUOSegmentationLib.nnunet.trainer", "--dataset", dataset_folder.name,
                "--configuration", train_configuration, "--fold", str(fold), "--epochs", str(epochs),
                "--iterations", str(iterations_per_epoch), "--device", device, "--plans", plans_name]
        if pretrained:
            args += ["--pretrained-weights", str(pretrained.checkpoint)]
        if trust_model:
            args += ["--trust-model"]
        if initial_lr:
            args += ["--initial-lr", str(initial_lr)]
        if not final_validation:
            args += ["--no-final-validation"]
        if continue_training:
            args += ["--continue"]
        child_env = dict(env)
        child_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                   env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        _run(args, child_env, f"training of fold {fold}", log_file)
    model_folder = work_dir / "results" / dataset_folder.name / f"IWUOTrainer__{plans_name}__{train_configuration}"
    result = TrainResult(model_folder=str(model_folder), folds=list(folds), plans_edits=edits, plans=plans_name,
                         plans_from=pretrained.source if pretrained else None, splits=splits)
    for fold in folds:
        summary = model_folder / f"fold_{fold}" / "validation" / "summary.json"
        if final_validation and summary.is_file():
            data = json.loads(summary.read_text())
            result.validation_dice[str(fold)] = {k: round(float(v["Dice"]), 4) for k, v in data["mean"].items()}
        record = model_folder / f"fold_{fold}" / "iwuo_training.json"
        if record.is_file():
            result.training[str(fold)] = json.loads(record.read_text())
    if progress:
        progress(1.0, "training finished")
    return result


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a checkpoint without the optimizer state (half the size, identical predictions)."""
    import torch

    checkpoint = torch.load(src, map_location="cpu", weights_only=False)
    checkpoint["optimizer_state"] = None
    checkpoint["grad_scaler_state"] = None
    atomic_write_file(dst, lambda tmp: torch.save(checkpoint, tmp))


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
