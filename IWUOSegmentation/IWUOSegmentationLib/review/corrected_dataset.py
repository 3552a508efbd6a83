"""Reviewed cases as an nnU-Net training dataset: what `iwuo export-dataset` and the module's button write.

Each review folder holds the analysed images (inputs/), the prediction (analysis/) and the
expert's corrected label map, in the label values the model writes. A review becomes a training
case only when its saved corrections and its budget log agree: every slice where the corrected
map differs from the prediction must have a logged correction (a crash between saving and
logging leaves one unlogged until the review is reopened), and a log that counts voxel changes
needs the corrected map on disk. Reviews without any correction are the unchanged prediction,
which teaches the model nothing new, so they are exported only on request.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk

from ..data.analysis_identity import read_summary
from ..errors import BadInputError, MissingInputError
from ..storage.atomic_files import folder_swapped_in
from .budget_log import BudgetLog, corrected_slices
from .folder import ReviewFolder


@dataclass
class ReviewedCase:
    """One review folder checked for export."""

    folder: ReviewFolder
    images: list[Path]
    label: Optional[sitk.Image]  # corrected label map (or the prediction when nothing was corrected)
    corrected_slices: list[int]  # slices where the corrected map differs from the prediction
    voxels_changed: int
    model_path: str

    @property
    def corrected(self) -> bool:
        return self.voxels_changed > 0


@dataclass
class ExportResult:
    dataset: str
    cases: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def _label_values(labels: dict) -> set[int]:
    values: set[int] = set()
    for value in labels.values():
        values.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return values


def find_review_folders(paths: list[str | os.PathLike]) -> list[ReviewFolder]:
    """Review folders among `paths`; a folder that is none but holds some (e.g. ~/IWUOSegmentation) gives those."""
    found: list[ReviewFolder] = []
    for path in paths:
        folder = ReviewFolder(path)
        if not folder.root.is_dir():
            raise MissingInputError(f"Review folder {folder.root} does not exist.")
        if folder.has_analysis() or folder.log.is_file():
            found.append(folder)
            continue
        inner = [ReviewFolder(p) for p in sorted(folder.root.iterdir()) if p.is_dir() and ReviewFolder(p).has_analysis()]
        if not inner:
            raise BadInputError(f"{folder.root} is not a review folder (no analysis/summary.json, no review.budget.jsonl) "
                                "and holds none.")
        found += inner
    return found


@dataclass
class ReviewState:
    """What a review folder holds, read and checked for consistency: its analysis' summary, its log, the
    prediction and the corrected label map (the prediction where no correction was saved)."""

    name: str
    summary: dict
    events: list[dict]
    axis: int
    prediction_image: sitk.Image
    prediction: np.ndarray
    corrected_image: Optional[sitk.Image]
    corrected: np.ndarray
    logged_slices: set[int]  # slices with a logged correction (an edit, or marked done)


def read_review_state(folder: ReviewFolder, channel_names: Optional[list[str]] = None,
                      labels: Optional[dict] = None) -> ReviewState:
    """Read a review (read-only); raise BadInputError saying what is wrong and what to do."""
    name = folder.root.name
    if not folder.has_analysis():
        raise BadInputError(f"Review '{name}' ({folder.root}) has no analysis (analysis/summary.json).")
    summary = read_summary(folder.analysis)  # a damaged summary.json: one line naming the folder
    model_info = summary.get("model", {})
    if channel_names is not None and list(model_info.get("channels", channel_names)) != list(channel_names):
        raise BadInputError(f"Review '{name}' was analysed with a model whose channels are "
                            f"{model_info.get('channels')}, not {channel_names}.")
    if labels is not None and model_info.get("labels") not in (None, labels):
        raise BadInputError(f"Review '{name}' was analysed with a model with other labels ({model_info.get('labels')}).")
    events = BudgetLog(folder.log).read()
    started = [e for e in events if e["kind"] == "session_started"]
    if not started:
        raise BadInputError(f"Review '{name}' has no budget log ({folder.log.name}): it was analysed but never reviewed.")
    prediction_image = sitk.ReadImage(str(folder.analysis / f"segmentation{summary.get('extension', '.nii.gz')}"))
    prediction = sitk.GetArrayFromImage(prediction_image)
    corrected_image = sitk.ReadImage(str(folder.corrected)) if folder.corrected.is_file() else None
    logged = corrected_slices(events)
    logged_edits = {int(e["slice"]) for e in events if e["kind"] == "slice_corrected"
                    and sum(e.get("voxels_added", {}).values()) + sum(e.get("voxels_removed", {}).values()) > 0}
    if corrected_image is None:
        if logged_edits:
            raise BadInputError(f"Review '{name}': the budget log counts {len(logged_edits)} corrected slice(s) but "
                                f"{folder.corrected.name} is missing, so the corrections cannot be read.")
        corrected = prediction
    else:
        corrected = sitk.GetArrayFromImage(corrected_image)
        if corrected.shape != prediction.shape:
            raise BadInputError(f"Review '{name}': {folder.corrected.name} has grid {corrected.shape[::-1]}, the analysis "
                                f"{prediction.shape[::-1]}: they are not of the same case.")
    return ReviewState(name=name, summary=summary, events=events, axis=int(started[0].get("axis", 0)),
                       prediction_image=prediction_image, prediction=prediction, corrected_image=corrected_image,
                       corrected=corrected, logged_slices=logged)


def check_label_values(state: ReviewState, labels: dict) -> None:
    """Refuse a corrected segmentation with label values the model does not write."""
    unknown = set(np.unique(state.corrected).tolist()) - _label_values(labels) - {0}
    if unknown:
        raise BadInputError(f"Review '{state.name}': the corrected segmentation has label values {sorted(unknown)} that "
                            f"the model does not write ({sorted(_label_values(labels))}).")


def inspect_review(folder: ReviewFolder, channel_names: Optional[list[str]] = None,
                   labels: Optional[dict] = None) -> ReviewedCase:
    """Check one review for export; raise BadInputError saying what is wrong and what to do."""
    state = read_review_state(folder, channel_names, labels)
    name, summary = state.name, state.summary
    model_info = summary.get("model", {})
    channel_names = channel_names or list(model_info.get("channels", []))
    labels = labels if labels is not None else model_info.get("labels", {})
    changed = state.corrected != state.prediction
    other = tuple(a for a in range(changed.ndim) if a != state.axis)
    changed_slices = [int(s) for s in np.flatnonzero(changed.any(axis=other))]
    unlogged = sorted(set(changed_slices) - state.logged_slices)
    if unlogged:
        shown = ", ".join(map(str, unlogged[:8])) + (" ..." if len(unlogged) > 8 else "")
        raise BadInputError(f"Review '{name}': slice(s) {shown} differ from the prediction but the budget log has no "
                            "correction there; open the review again (Slicer module or `iwuo review`), which logs "
                            "them, then export.")
    check_label_values(state, labels)
    images = folder.input_images()
    if not images:
        recorded = [Path(p) for p in summary.get("inputs", [])]
        if recorded and all(p.is_absolute() and p.is_file() for p in recorded):
            images = recorded
        else:
            raise BadInputError(f"Review '{name}' has no saved input images ({folder.inputs}) and the analysed files "
                                "are not at their recorded paths; analyse the case again into this review folder.")
    if channel_names and len(images) != len(channel_names):
        raise BadInputError(f"Review '{name}' has {len(images)} input image(s); the model takes {len(channel_names)} "
                            f"({', '.join(channel_names)}).")
    label = state.corrected_image if state.corrected_image is not None else state.prediction_image
    label = sitk.Cast(label, sitk.sitkUInt8)
    label.CopyInformation(state.prediction_image)
    return ReviewedCase(folder=folder, images=images, label=label, corrected_slices=changed_slices,
                        voxels_changed=int(changed.sum()), model_path=str(model_info.get("path", "")))


def _case_name(folder: ReviewFolder, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9-]+", "-", folder.root.name).strip("-") or "case"
    name, n = base, 2
    while name in used:
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name


def export_reviews(reviews: list[str | os.PathLike], out: str | os.PathLike, model_path: Optional[str] = None,
                   include_uncorrected: bool = False,
                   progress: Optional[Callable[[float, str], None]] = None) -> ExportResult:
    """Write the reviewed cases as the nnU-Net raw dataset `out` (DatasetXXX_Name) in the model's channels and labels.

    Every review is checked before anything is written; the dataset folder appears whole or not at all.
    """
    from ..nnunet.model_folder import open_model
    from ..nnunet.training import dataset_id_from_folder, export_corrected_dataset

    out = Path(out)
    dataset_id_from_folder(out)
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"{out} already exists and is not empty; choose a new DatasetXXX_Name (or remove it).")
    folders = find_review_folders(reviews)
    if model_path is None:
        recorded = {read_summary(f.analysis).get("model", {}).get("path")
                    for f in folders if f.has_analysis()}
        if len(recorded) != 1 or None in recorded:
            raise BadInputError("The reviews were analysed with different models (or record none): name the model "
                                "with --model.")
        model_path = recorded.pop()
    model = open_model(model_path)
    checked = []
    for i, folder in enumerate(folders):
        if progress:
            progress(0.8 * i / len(folders), f"checking review {folder.root.name}")
        checked.append(inspect_review(folder, model.channel_names, model.labels))
    result = ExportResult(dataset=str(out.resolve()))
    chosen, used = [], set()
    for case in checked:
        if not case.corrected and not include_uncorrected:
            result.skipped.append({"review": str(case.folder.root), "reason": "no correction (the prediction as it was); "
                                   "--include-uncorrected exports it"})
            continue
        name = _case_name(case.folder, used)
        chosen.append({"name": name, "images": case.images, "label": case.label})
        result.cases.append({"name": name, "review": str(case.folder.root), "corrected_slices": len(case.corrected_slices),
                             "voxels_changed": case.voxels_changed})
    if not chosen:
        raise BadInputError(f"None of the {len(checked)} review(s) has a correction to learn from; pass "
                            "--include-uncorrected to export the predictions as they were accepted.")
    dataset_json = {**model.dataset_json, "name": out.name.split("_", 1)[1],
                    "description": f"Expert-corrected cases exported by iwuo export-dataset from {len(chosen)} review(s) "
                                   f"analysed with {model.path}"}
    dataset_json.pop("file_ending", None)
    if progress:
        progress(0.85, f"writing {len(chosen)} case(s)")
    with folder_swapped_in(out) as built:  # out is absent or empty (checked above)
        export_corrected_dataset(chosen, built, {**dataset_json, "file_ending": ".nii.gz"})
    if progress:
        progress(1.0, f"{out} written")
    return result


def next_dataset_folder(parent: str | os.PathLike, name: str = "IWUOCorrected", first_id: int = 501) -> Path:
    """parent/DatasetNNN_<name> with the first dataset id from `first_id` that no folder in `parent` uses."""
    parent = Path(parent)
    used = {int(m.group(1)) for p in (parent.iterdir() if parent.is_dir() else [])
            if (m := re.match(r"^\.?Dataset(\d{3})_", p.name))}
    free = next((i for i in range(first_id, 1000) if i not in used), None)
    if free is None:
        raise BadInputError(f"Every dataset id from {first_id} to 999 is taken in {parent}.")
    return parent / f"Dataset{free:03d}_{name}"


def export_readiness(folder: ReviewFolder) -> str:
    """One line for a review's report: can it become training data now, and how."""
    try:
        case = inspect_review(folder)
    except BadInputError as exc:
        return f"Not ready for `iwuo export-dataset`: {exc}"
    command = (f"`iwuo export-dataset --reviews {folder.root} --model {case.model_path or 'MODEL'} "
               "--out DatasetXXX_Name`")
    if not case.corrected:
        return f"No correction yet: exported only with --include-uncorrected ({command})."
    return (f"Ready for training: {len(case.corrected_slices)} corrected slice(s), {case.voxels_changed} voxels changed, "
            f"saved and logged; export with {command}.")
