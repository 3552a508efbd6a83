"""Trained nnU-Net v2 model folders: find them, describe them, load their checkpoints safely.

Accepts the three shapes users have: a trained-model folder as `nnUNetv2_train` writes it
(`<trainer>__<plans>__<configuration>/` with dataset.json, plans.json, fold_*/checkpoint_*.pth),
the `DatasetXXX_Name` folder above it (several configurations: the caller chooses), and a zip as
`nnUNetv2_export_model_to_zip` writes it (installed into a models directory first).

Checkpoints are pickles: nnU-Net's own loader (`weights_only=False`) runs whatever code a
malicious file carries. Here they load with `weights_only=True` and a short allow-list of the
plain types nnU-Net checkpoints hold; anything else is refused unless the caller passes
`trust_model=True`.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import BadInputError, BadModelError, MissingInputError, UntrustedModelError
from ..storage.atomic_files import folder_swapped_in

CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
_CONFIG_RE = re.compile(r"^(?P<trainer>[^_].*?)__(?P<plans>.+?)__(?P<configuration>.+)$")


@dataclass
class ModelFolder:
    """A trained-model folder with what inference needs to know about it."""

    path: Path
    dataset_json: dict
    plans: dict
    configuration: str
    folds: list[str]
    checkpoint_name: str

    @property
    def channel_names(self) -> list[str]:
        channels = self.dataset_json.get("channel_names") or self.dataset_json.get("modality") or {}
        return [channels[k] for k in sorted(channels, key=lambda k: int(k))]

    @property
    def labels(self) -> dict[str, object]:
        return dict(self.dataset_json["labels"])

    @property
    def regions_class_order(self) -> list[int] | None:
        return self.dataset_json.get("regions_class_order")

    @property
    def is_region_based(self) -> bool:
        return any(isinstance(v, (list, tuple)) and len(v) > 1 for v in self.labels.values())

    @property
    def file_ending(self) -> str:
        return self.dataset_json.get("file_ending", ".nii.gz")

    @property
    def output_names(self) -> list[str]:
        """Names of the network's output channels: regions (sigmoid) or labels incl. background (softmax)."""
        if self.is_region_based:  # nnU-Net keeps dataset.json's order of the foreground regions
            return [name for name, value in self.labels.items() if value not in (0, [0], (0,))]
        return [name for name, _ in sorted(self.labels.items(), key=lambda kv: int(kv[1]))]

    @property
    def written_labels(self) -> dict[str, int]:
        """Label value each output writes into the label map (regions via regions_class_order)."""
        if not self.is_region_based:
            return {name: int(value) for name, value in self.labels.items()}
        order = self.regions_class_order or list(range(1, len(self.output_names) + 1))
        return {"background": 0, **{name: int(v) for name, v in zip(self.output_names, order)}}

    @property
    def has_dropout(self) -> bool:
        arch = self.plans["configurations"][self.configuration].get("architecture", {}).get("arch_kwargs", {})
        p = (arch.get("dropout_op_kwargs") or {}).get("p", 0)
        return bool(arch.get("dropout_op")) and p > 0

    def checkpoint_path(self, fold: str) -> Path:
        return self.path / f"fold_{fold}" / self.checkpoint_name

    def describe(self) -> dict:
        return {"path": str(self.path), "configuration": self.configuration, "folds": self.folds,
                "checkpoint": self.checkpoint_name, "channels": self.channel_names, "labels": self.labels,
                "region_based": self.is_region_based, "dropout": self.has_dropout}


def list_configurations(dataset_folder: str | os.PathLike) -> list[str]:
    """Trained-model folders (`trainer__plans__configuration`) inside a DatasetXXX_Name folder."""
    folder = Path(dataset_folder)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _CONFIG_RE.match(p.name)
                  and (p / "dataset.json").is_file())


def open_model(path: str | os.PathLike | None, configuration: str | None = None, folds: list[str] | None = None,
               checkpoint_name: str | None = None, models_dir: str | os.PathLike | None = None) -> ModelFolder:
    """Open a trained-model folder, a DatasetXXX_Name folder (choose `configuration`) or a zip.

    None is the bundled demo model: the one place that default is decided (CLI, review, demo, self-test)."""
    if path is None:
        from .demo_model import demo_model_folder

        path = demo_model_folder()
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"Model not found: {path} does not exist.")
    if path.is_file() and zipfile.is_zipfile(path):
        path = install_model_zip(path, models_dir or Path.home() / ".iwuo" / "models")
    if not (path / "plans.json").is_file():
        candidates = list_configurations(path) if path.is_dir() else []
        if not candidates and path.is_dir():
            # A zip or nnUNet_results folder holds Dataset folders one level further down.
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                candidates += [f"{sub.name}/{c}" for c in list_configurations(sub)]
        if not candidates:
            raise BadModelError(f"{path} is not an nnU-Net model folder: it has no plans.json and no "
                                "trainer__plans__configuration subfolders.")
        if configuration is None:
            if len(candidates) > 1:
                raise BadModelError(f"{path} holds several configurations; choose one of: {', '.join(candidates)}")
            configuration = candidates[0]
        match = [c for c in candidates if c == configuration or c.split("/")[-1] == configuration
                 or c.split("__")[-1] == configuration]
        if not match:
            raise BadModelError(f"Configuration '{configuration}' not found in {path}; available: {', '.join(candidates)}")
        path = path / match[0]
    for name in ("dataset.json", "plans.json"):
        if not (path / name).is_file():
            raise BadModelError(f"The model folder {path} is missing {name}.")
    try:
        dataset_json = json.loads((path / "dataset.json").read_text())
        plans = json.loads((path / "plans.json").read_text())
    except json.JSONDecodeError as exc:
        raise BadModelError(f"Cannot read the model's JSON files in {path}: {exc}") from exc
    config_match = _CONFIG_RE.match(path.name)
    config_name = config_match.group("configuration") if config_match else None
    if config_name not in plans.get("configurations", {}):
        raise BadModelError(f"The folder name {path.name} names configuration '{config_name}', which plans.json "
                            f"does not define ({', '.join(plans.get('configurations', {}))}).")
    available = sorted(p.name[len("fold_"):] for p in path.glob("fold_*") if p.is_dir())
    names = [checkpoint_name] if checkpoint_name else list(CHECKPOINT_NAMES)
    chosen_name = None
    for name in names:
        with_ckpt = [f for f in available if (path / f"fold_{f}" / name).is_file()]
        if with_ckpt:
            chosen_name, available = name, with_ckpt
            break
    if chosen_name is None:
        raise BadModelError(f"No fold of {path} has a checkpoint ({' or '.join(names)}): training may not have finished.")
    if folds:
        missing = [str(f) for f in folds if str(f) not in available]
        if missing:
            raise BadModelError(f"Fold(s) {', '.join(missing)} have no {chosen_name} in {path}; "
                                f"available folds: {', '.join(available)}.")
        available = [str(f) for f in folds]
    return ModelFolder(path=path, dataset_json=dataset_json, plans=plans, configuration=config_name,
                       folds=available, checkpoint_name=chosen_name)


#: Zip-bomb limits: model weights barely compress, so a zip that grows 100-fold (past 256 MiB) is refused.
MAX_UNPACKED_BYTES, BOMB_MIN_BYTES, BOMB_RATIO = 64 * 2**30, 256 * 2**20, 100


def install_model_zip(zip_path: str | os.PathLike, models_dir: str | os.PathLike) -> Path:
    """Unpack a model zip into `models_dir` after refusing unsafe entries; return the install folder."""
    zip_path, models_dir = Path(zip_path), Path(models_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadModelError(f"{zip_path.name} is not a readable zip file ({exc}).") from exc
    with archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES or (unpacked > BOMB_MIN_BYTES
                                             and unpacked > BOMB_RATIO * max(zip_path.stat().st_size, 1)):
            raise BadModelError(f"Refusing {zip_path.name}: it would unpack to {unpacked / 2**30:.1f} GiB from "
                                f"{zip_path.stat().st_size / 2**20:.1f} MiB (a zip bomb, not model weights).")
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if info.filename.startswith(("/", "\\")) or name.is_absolute() or ".." in name.parts \
                    or re.match(r"^[A-Za-z]:", info.filename):
                raise BadModelError(f"Refusing {zip_path.name}: entry '{info.filename}' would be written outside "
                                    "the models folder.")
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise BadModelError(f"Refusing {zip_path.name}: entry '{info.filename}' is a symbolic link.")
        target = models_dir / zip_path.stem
        with folder_swapped_in(target) as built:
            archive.extractall(built)
    return target


def _allowed_globals() -> list:
    import numpy as np
    import torch

    allowed = [np.dtype, torch.device]
    try:
        allowed.append(np._core.multiarray.scalar)
    except AttributeError:  # numpy < 2
        allowed.append(np.core.multiarray.scalar)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def load_checkpoint(path: str | os.PathLike, trust_model: bool = False) -> dict:
    """Load an nnU-Net checkpoint on the CPU without running pickled code (unless trusted)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise BadModelError(f"Checkpoint missing: {path}")
    if trust_model:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UntrustedModelError(
            f"{path} contains Python objects that could run code when loaded, so it was not loaded. "
            "Only load it if you trust where it came from: pass trust_model=True (command line: --trust-model). "
            f"Detail: {str(exc).splitlines()[0]}") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise BadModelError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise BadModelError(f"{path} is not an nnU-Net checkpoint (no 'network_weights').")
    return checkpoint


def check_channels(model: ModelFolder, n_images: int) -> None:
    if n_images != len(model.channel_names):
        raise BadInputError(f"The model expects {len(model.channel_names)} input images "
                            f"({', '.join(model.channel_names)}), but {n_images} were given.")
