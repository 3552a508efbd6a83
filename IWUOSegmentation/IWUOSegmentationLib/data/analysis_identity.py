"""What an analysis was made from, so that it is reused only for the same case and the same model.

Why: review folders are reused (the desktop module's default folder is named after the first
volume, "FLAIR" for many cases; BraTS cases share one grid), and opening one patient's analysis,
heatmaps and log on another patient is a clinical error that a grid check cannot catch.

`summary.json` of an analysis records its identity:

- per input channel: the SHA-256 of the voxels the model saw (float32, z-y-x order, as
  `CaseImages` reads them) and the grid (size, spacing, origin, direction in LPS);
- the model: the SHA-256 of dataset.json, plans.json and each used fold's checkpoint, with the
  configuration, the folds and the checkpoint name (content, not path: a model moved or unzipped
  elsewhere is the same model).

An analysis is reused only when the case and the model in hand have the same identity (voxels
exactly, geometry within the tolerance of `case_images.same_geometry`); anything else is refused
with a message that names what differs. An analysis written before identities were recorded is
refused as well, with the advice to analyse the case again: there is no override, because nothing
could tell a clinician whether such an analysis belongs to the patient on screen.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import BadInputError

IDENTITY_VERSION = 1
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


class AnalysisMismatchError(BadInputError):
    """An analysis was about to be reused for images or a model other than the ones it was made from."""


def voxels_sha256(array_zyx: np.ndarray) -> str:
    """SHA-256 of the voxels as the model sees them (little-endian float32, C order) and of their shape."""
    voxels = np.ascontiguousarray(array_zyx, dtype="<f4")
    digest = hashlib.sha256(repr(tuple(voxels.shape)).encode())
    digest.update(voxels.tobytes())
    return digest.hexdigest()


def image_identity(array_zyx: np.ndarray, spacing: Sequence[float], origin: Sequence[float],
                   direction: Sequence[float], name: str = "") -> dict:
    """Identity of one input channel; geometry in SimpleITK's convention (x-y-z, LPS, row-major direction)."""
    shape = np.shape(array_zyx)
    return {"name": name, "voxels_sha256": voxels_sha256(array_zyx), "size_xyz": [int(s) for s in shape[::-1]],
            "spacing": [float(v) for v in spacing], "origin": [float(v) for v in origin],
            "direction": [float(v) for v in direction]}


def sitk_image_identity(image, name: str = "") -> dict:
    """Identity of a SimpleITK image (its voxels as float32, as `CaseImages` reads them)."""
    import SimpleITK as sitk

    return image_identity(sitk.GetArrayFromImage(image).astype(np.float32), image.GetSpacing(), image.GetOrigin(),
                          image.GetDirection(), name)


def case_identity(case, channel_names: Optional[Sequence[str]] = None) -> list[dict]:
    """Identities of the channels of a `CaseImages`, named after the model's channels when given."""
    names = list(channel_names or [])
    return [image_identity(array, case.spacing, case.origin, case.direction, names[i] if i < len(names) else "")
            for i, array in enumerate(case.arrays)]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, modification time) for this process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def model_identity(model) -> dict:
    """Identity of a model: a `ModelFolder`, or its `describe()` dict (path, configuration, folds, checkpoint)."""
    info = model.describe() if hasattr(model, "describe") else dict(model)
    path = Path(info["path"])
    files = {name: file_sha256(path / name) for name in ("dataset.json", "plans.json")}
    for fold in info["folds"]:
        name = f"fold_{fold}/{info['checkpoint']}"
        files[name] = file_sha256(path / name)
    return {"configuration": info["configuration"], "folds": [str(f) for f in info["folds"]],
            "checkpoint": info["checkpoint"], "files": files}


def analysis_identity(inputs: list[dict], model: dict) -> dict:
    """The identity written into summary.json: the inputs' and the model's."""
    return {"version": IDENTITY_VERSION, "inputs": inputs, "model": model}


def _input_differences(recorded: dict, expected: dict, label: str) -> list[str]:
    out = []
    if recorded.get("size_xyz") != expected.get("size_xyz"):
        out.append(f"{label}: grid {_size(recorded)} in the analysis, {_size(expected)} here")
    else:
        for key, tolerance in (("spacing", dict(rtol=1e-4, atol=0)), ("origin", dict(rtol=0, atol=1e-3)),
                               ("direction", dict(rtol=0, atol=1e-4))):
            a, b = recorded.get(key), expected.get(key)
            if a is None or b is None or len(a) != len(b) or not np.allclose(a, b, **tolerance):
                out.append(f"{label}: {key} {_numbers(a)} in the analysis, {_numbers(b)} here")
        if recorded.get("voxels_sha256") != expected.get("voxels_sha256"):
            out.append(f"{label}: other voxel values (another image on the same grid)")
    return out


def _size(identity: dict) -> str:
    return "x".join(str(v) for v in identity.get("size_xyz") or ["?"])


def _numbers(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")" if values is not None else "(none)"


def identity_differences(recorded: dict, inputs: Optional[list[dict]] = None, model: Optional[dict] = None,
                         first_inputs_only: bool = False) -> list[str]:
    """What differs between a recorded identity and the inputs/model in hand (None: not compared;
    `first_inputs_only`: `inputs` are the first channels only, e.g. the one volume a saved scene shows)."""
    out = []
    if inputs is not None:
        had = recorded.get("inputs") or []
        if len(had) < len(inputs) or (len(had) != len(inputs) and not first_inputs_only):
            out.append(f"{len(had)} input image(s) in the analysis, {len(inputs)} here")
        for i, (a, b) in enumerate(zip(had, inputs)):
            out += _input_differences(a, b, f"input {i + 1} ({b.get('name') or a.get('name') or 'channel'})")
    if model is not None:
        had = recorded.get("model") or {}
        for key in ("configuration", "folds", "checkpoint"):
            if had.get(key) != model.get(key):
                out.append(f"model {key}: {had.get(key)} in the analysis, {model.get(key)} here")
        files = had.get("files") or {}
        changed = [name for name, digest in model.get("files", {}).items() if name in files and files[name] != digest]
        if changed:
            out.append(f"model files with other contents: {', '.join(changed)}")
    return out


def check_identity(summary: dict, where: str | os.PathLike, inputs: Optional[list[dict]] = None,
                   model: Optional[dict] = None, first_inputs_only: bool = False) -> None:
    """Refuse (AnalysisMismatchError) an analysis whose summary does not record these inputs and this model."""
    recorded = summary.get("identity")
    if not recorded or recorded.get("version") != IDENTITY_VERSION:
        raise AnalysisMismatchError(
            f"The analysis in {where} does not record which images and model it was made from (it was written by an "
            "older version), so it cannot be checked against this case and was not opened. Analyse the case again "
            "(choose an empty review folder, or delete that analysis folder).")
    differences = identity_differences(recorded, inputs, model, first_inputs_only)
    if differences:
        raise AnalysisMismatchError(
            f"The analysis in {where} was made from other inputs than this case and model, so it was not opened: "
            f"{'; '.join(differences)}. Analyse this case into its own review folder (an empty one), or open the "
            "case this analysis belongs to.")


def read_summary(analysis_folder: str | os.PathLike) -> dict:
    """summary.json of an analysis folder (a clear error when there is none)."""
    summary_file = Path(analysis_folder) / "summary.json"
    if not summary_file.is_file():
        raise BadInputError(f"{analysis_folder} is not an analysis folder (no summary.json).")
    try:
        return json.loads(summary_file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"The analysis folder {analysis_folder} is damaged ({summary_file.name} cannot be read: "
                            f"{exc}); analyse the case again.") from exc


def check_analysis_folder(analysis_folder: str | os.PathLike, inputs: Optional[list[dict]] = None,
                          model: Optional[dict] = None) -> dict:
    """Check an analysis folder against the inputs/model in hand; return its summary."""
    summary = read_summary(analysis_folder)
    check_identity(summary, analysis_folder, inputs, model)
    return summary
