"""Write and read an analysis folder: label map, probabilities, uncertainty maps, summary.json.

summary.json records the identity of the analysis' inputs and model (analysis_identity.py): an
analysis is reused only for the same images and the same model.

The folder is written under a temporary name and renamed into place at the end, so a cancelled
or crashed run leaves no half-made analysis. Image format follows the extension asked for
(.nii.gz by default, .nrrd, .mha).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..errors import BadInputError
from ..storage.atomic_files import atomic_write_image, atomic_write_text, check_complete, folder_swapped_in
from .analysis_identity import analysis_identity, case_identity, model_identity, read_summary
from .case_images import AnalysisResult, CaseImages

UNCERTAINTY_MAPS = ("variance", "entropy", "mutual_information", "disagreement")


def write_analysis(result: AnalysisResult, case: CaseImages, out_dir: str | os.PathLike, model_info: dict,
                   extension: str = ".nii.gz") -> Path:
    """Write `result` into `out_dir` atomically (the folder appears whole or not at all).

    `model_info` is the model's `describe()`: its files are hashed into the analysis' identity."""
    if extension not in (".nii.gz", ".nii", ".nrrd", ".mha"):
        raise BadInputError(f"Unsupported output extension {extension!r}; use .nii.gz, .nii, .nrrd or .mha.")
    out = Path(out_dir)
    identity = analysis_identity(case_identity(case, model_info.get("channels")), model_identity(model_info))
    # built aside and swapped in by renames: the old analysis is moved aside in one rename (never half-deleted in
    # place, where a crash would leave a summary.json beside missing maps), then the new one renamed in
    with folder_swapped_in(out, swap_point="analysis.swap") as built:
        def write_image(array: np.ndarray, name: str) -> None:
            atomic_write_image(built / f"{name}{extension}", case.to_image(array), tmp_point="analysis.image")

        write_image(result.label_map.astype(np.uint8), "segmentation")
        for i, name in enumerate(result.output_names):
            write_image(result.probabilities[i].astype(np.float32), f"probability_{name}")
        for name in UNCERTAINTY_MAPS:
            write_image(result.uncertainty[name].astype(np.float32), f"uncertainty_{name}")
        for i, name in enumerate(result.output_names):
            write_image(result.uncertainty["member_variance"][i].astype(np.float32), f"member_variance_{name}")
        summary = {
            "model": model_info, "members": result.members, "region_based": result.region_based,
            "outputs": result.output_names, "seconds": round(result.seconds, 2), "extension": extension,
            "inputs": case.names, "shape_zyx": list(result.label_map.shape),
            "label_voxels": {str(int(k)): int(v) for k, v in zip(*np.unique(result.label_map, return_counts=True))},
            "uncertainty_mean": {n: float(result.uncertainty[n].mean()) for n in UNCERTAINTY_MAPS},
            "identity": identity,
        }
        if result.calibration:  # data/calibration.calibration_record: the probabilities and entropy are calibrated
            summary["calibration"] = result.calibration
        atomic_write_text(built / "summary.json", json.dumps(summary, indent=2))
    return out


@dataclass
class LoadedAnalysis:
    """An analysis folder read back: arrays in (z, y, x), and `geometry`, the image whose grid they are on."""

    label_map: np.ndarray
    probabilities: np.ndarray
    uncertainty: dict[str, np.ndarray]
    member_variance: np.ndarray
    summary: dict
    geometry: sitk.Image


def read_analysis(folder: str | os.PathLike, summary: Optional[dict] = None) -> LoadedAnalysis:
    """Read the maps of an analysis folder (`summary`: its summary.json when already read and checked)."""
    folder = Path(folder)
    try:
        summary = read_summary(folder) if summary is None else summary
        ext = summary.get("extension", ".nii.gz")

        def read_whole(name: str) -> sitk.Image:
            check_complete(folder / f"{name}{ext}")
            return sitk.ReadImage(str(folder / f"{name}{ext}"))

        geometry = read_whole("segmentation")
        read = lambda name: sitk.GetArrayFromImage(read_whole(name))  # noqa: E731
        return LoadedAnalysis(
            label_map=sitk.GetArrayFromImage(geometry),
            probabilities=np.stack([read(f"probability_{n}") for n in summary["outputs"]]),
            uncertainty={n: read(f"uncertainty_{n}") for n in UNCERTAINTY_MAPS},
            member_variance=np.stack([read(f"member_variance_{n}") for n in summary["outputs"]]),
            summary=summary, geometry=geometry)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError, OSError) as exc:
        # garbled summary.json, a missing or truncated map: refused, never half-read
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"The analysis folder {folder} is damaged ({detail[:200]}); run the analysis "
                            "again.") from exc
