"""A site's calibration of a model's probabilities: the file, its keying to one model, and applying it.

Why: every score that reads the probabilities (impact, IWUO, expected Dice, the budget bar's estimated
gain) assumes they are calibrated, and under domain shift a model is overconfident. `iwuo calibrate`
(review/site_calibration.py) fits a post-hoc transform per network output from the site's finished
reviews; the analysis, the review and the evaluation apply it here. numpy only: stock Slicer (no
sklearn, no torch) must be able to apply one.

The file (JSON, `"format": "iwuo-calibration"`, version 1) holds:

- `model_identity` (analysis_identity.model_identity: SHA-256 of dataset.json, plans.json and the
  checkpoints, with configuration and folds) and `model_key`, the SHA-256 of that identity; the file
  is refused for any other model;
- `outputs`, `region_based`, `written_labels`: the outputs the transform applies to and the label
  each writes (used only when relabelling is asked for);
- `transform`: region (sigmoid) models: one transform per output on z = logit p: `none`,
  `temperature` (z / T), `platt` (a z + b) or `isotonic` (a monotone piecewise-linear map of p).
  Label (softmax) models: one transform of all classes on z_c = log p_c (the logits up to a per-voxel
  constant, which the softmax ignores): `none`, `temperature` (one T), `class_temperatures` (one T
  per class) or `isotonic` (each class's p mapped, then renormalised);
- `structures`: per structure of the model the method and its held-out log loss and ECE before and
  after; `fitted_on`: the reviews and what was taken from them; `voxels`: how many were fitted on;
  `time_model`: the expert time model fitted from the same reviews, or why none was.

The label map is kept unless `relabel=True`: a temperature moves neither the 0.5 crossing of a sigmoid
nor the argmax of a softmax, but Platt, isotonic and class temperatures can, and the segmentation a
reviewer corrects should not change because its probabilities did. The entropy of the mean
probabilities is recomputed; variance, mutual information, disagreement and the member variance
describe how the members spread, which a transform of their mean cannot know (the members are
streamed and gone), so they stay as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import BadCalibrationError

FORMAT = "iwuo-calibration"
VERSION = 1
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before logits, as the member statistics do
SIGMOID_METHODS = ("none", "temperature", "platt", "isotonic")
SOFTMAX_METHODS = ("none", "temperature", "class_temperatures", "isotonic")


def model_key(identity: dict) -> str:
    """SHA-256 of a model identity (canonical JSON): the name a calibration is kept under."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def calibrations_folder() -> Path:
    """Where `iwuo calibrate` saves a calibration by default and the analysis looks for one."""
    return Path.home() / ".iwuo" / "calibrations"


def default_calibration_path(identity: dict) -> Path:
    """The default file of the calibration of the model with this identity."""
    return calibrations_folder() / f"{model_key(identity)}.json"


def find_calibration(identity: dict) -> Optional[Path]:
    """The calibration saved for this model in the default place, or None."""
    path = default_calibration_path(identity)
    return path if path.is_file() else None


# -- transforms -----------------------------------------------------------------------------------------
def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float32), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float32)))).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the first axis (channels first)."""
    e = np.exp(z - z.max(0, keepdims=True))
    return (e / e.sum(0, keepdims=True)).astype(np.float32)


def sigmoid_transform(p: np.ndarray, spec: dict) -> np.ndarray:
    """Calibrated probabilities of one sigmoid output (`spec`: a channel transform of the file)."""
    method = spec["method"]
    if method == "none":
        return np.asarray(p, np.float32)
    if method == "isotonic":
        return np.interp(p, spec["x"], spec["y"]).astype(np.float32)
    a, b = (1.0 / spec["temperature"], 0.0) if method == "temperature" else (spec["a"], spec["b"])
    return sigmoid(np.float32(a) * logit(p) + np.float32(b))


def softmax_transform(p: np.ndarray, spec: dict) -> np.ndarray:
    """Calibrated probabilities of a softmax's classes (channels first)."""
    method = spec["method"]
    p = np.asarray(p, np.float32)
    if method == "none":
        return p
    if method == "isotonic":
        q = np.stack([np.interp(p[c], xy["x"], xy["y"]) for c, xy in enumerate(spec["classes"])])
        q = np.clip(q, EPS, None)
        return (q / q.sum(0, keepdims=True)).astype(np.float32)
    log_p = np.log(np.clip(p, EPS, 1.0))
    if method == "temperature":
        return softmax(log_p / np.float32(spec["temperature"]))
    temperatures = np.asarray(spec["temperatures"], np.float32).reshape((-1,) + (1,) * (p.ndim - 1))
    return softmax(log_p / temperatures)


def predictive_entropy(p: np.ndarray, region_based: bool) -> np.ndarray:
    """Entropy in nats of the mean probabilities, as nnunet/member_statistics.entropy computes it."""
    q = np.clip(np.asarray(p, np.float32), EPS, 1 - EPS)
    if region_based:
        return -(q * np.log(q) + (1 - q) * np.log1p(-q)).sum(0)
    return -(q * np.log(q)).sum(0)


# -- the file -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A calibration file read back and checked; `data` is its content, `sha256` that of its bytes."""

    data: dict
    sha256: str
    path: str = ""

    @property
    def model_key(self) -> str:
        return self.data["model_key"]

    @property
    def outputs(self) -> list[str]:
        return list(self.data["outputs"])

    @property
    def region_based(self) -> bool:
        return bool(self.data["region_based"])

    @property
    def methods(self) -> dict[str, str]:
        """Structure name -> the method that calibrates it."""
        return {name: record["method"] for name, record in self.data["structures"].items()}

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (channels first, any trailing shape)."""
        if len(probabilities) != len(self.outputs):
            raise BadCalibrationError(f"The calibration {self.where} is for {len(self.outputs)} outputs "
                                      f"({', '.join(self.outputs)}); these probabilities have {len(probabilities)}.")
        transform = self.data["transform"]
        if self.region_based:
            return np.stack([sigmoid_transform(p, spec) for p, spec in zip(probabilities, transform["channels"])])
        return softmax_transform(probabilities, transform)

    def label_map(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map nnU-Net would write from these probabilities (regions: later regions win above 0.5)."""
        written = self.data["written_labels"]
        if self.region_based:
            out = np.zeros(probabilities.shape[1:], np.uint8)
            for name, p in zip(self.outputs, probabilities):
                out[p > 0.5] = written[name]
            return out
        values = np.asarray([written[name] for name in self.outputs], np.uint8)
        return values[np.argmax(probabilities, axis=0)]

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "(in memory)"


def _fail(where: str, why: str) -> BadCalibrationError:
    return BadCalibrationError(f"The calibration file {where} {why}; fit it again with `iwuo calibrate`.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_curve(x: Any, y: Any) -> bool:
    return (isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 1 and all(map(_finite, x + y))
            and all(b >= a for a, b in zip(x, x[1:])) and all(0.0 <= v <= 1.0 for v in y))


def _each(values: Any, n: int, ok) -> bool:
    return isinstance(values, list) and len(values) == n and all(ok(v) for v in values)


def _curve_ok(curve: Any) -> bool:
    return isinstance(curve, dict) and _check_curve(curve.get("x"), curve.get("y"))


def _transform_ok(spec: Any, n_classes: Optional[int] = None) -> bool:
    """Whether a transform's method is known and its parameters valid (`n_classes`: a softmax transform)."""
    if not isinstance(spec, dict) or spec.get("method") not in (SIGMOID_METHODS if n_classes is None else SOFTMAX_METHODS):
        return False
    positive = lambda v: _finite(v) and v > 0  # noqa: E731
    checks = {"none": lambda: True, "temperature": lambda: positive(spec.get("temperature")),
              "platt": lambda: _finite(spec.get("a")) and _finite(spec.get("b")),
              "class_temperatures": lambda: _each(spec.get("temperatures"), n_classes, positive),
              "isotonic": lambda: _curve_ok(spec) if n_classes is None else _each(spec.get("classes"), n_classes, _curve_ok)}
    return checks[spec["method"]]()


def check_calibration(data: Any, where: str = "(in memory)") -> None:
    """Refuse (BadCalibrationError, one line) content that is not a whole calibration fitted on data."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(where, f"is not an IWUO calibration (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise _fail(where, f"has version {data.get('version')!r}; this IWUOSegmentation reads version {VERSION}")
    identity, outputs = data.get("model_identity"), data.get("outputs")
    if not isinstance(identity, dict) or data.get("model_key") != model_key(identity):
        raise _fail(where, "is damaged (its model identity does not match its model_key)")
    if not (isinstance(outputs, list) and outputs and all(isinstance(o, str) for o in outputs)
            and isinstance(data.get("region_based"), bool) and isinstance(data.get("written_labels"), dict)
            and all(o in data["written_labels"] for o in outputs) and isinstance(data.get("structures"), dict)):
        raise _fail(where, "is damaged (outputs, region_based, written_labels or structures missing)")
    transform = data.get("transform")
    if data["region_based"]:
        channels = transform.get("channels") if isinstance(transform, dict) else None
        ok = _each(channels, len(outputs), _transform_ok)
    else:
        ok = _transform_ok(transform, len(outputs))
    if not ok:
        raise _fail(where, "is damaged (a transform is missing, of an unknown method, or has invalid parameters)")
    voxels = data.get("voxels")
    if not (isinstance(voxels, int) and voxels > 0 and data.get("fitted_on")):
        raise _fail(where, "was fitted on no data (no reviewed voxels)")


def calibration_from_data(data: dict, path: str | os.PathLike = "") -> Calibration:
    """A checked Calibration of content in hand (what the fit returns before it is written)."""
    check_calibration(data, str(path) or "(in memory)")
    text = calibration_text(data)
    return Calibration(data=data, sha256=hashlib.sha256(text.encode()).hexdigest(), path=str(path))


def calibration_text(data: dict) -> str:
    """The file's text: what is written and what the hash is taken of."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def check_model(calibration: Calibration, identity: dict) -> None:
    """Refuse a calibration fitted for another model than the one with `identity` (one line)."""
    if calibration.model_key != model_key(identity):
        raise BadCalibrationError(
            f"The calibration {calibration.where} was fitted for another model (model key "
            f"{calibration.model_key[:12]}, this model {model_key(identity)[:12]}); fit one for this model with "
            "`iwuo calibrate --model`.")


def load_calibration(path: str | os.PathLike, identity: Optional[dict] = None) -> Calibration:
    """Read and check a calibration file; with `identity`, refuse it unless it is that model's."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadCalibrationError(f"Cannot read the calibration file {path}: {exc.strerror or exc}.") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(str(path), f"is damaged (not JSON: {str(exc).splitlines()[0][:120]})") from exc
    check_calibration(data, str(path))
    calibration = Calibration(data=data, sha256=hashlib.sha256(raw).hexdigest(), path=str(path))
    if identity is not None:
        check_model(calibration, identity)
    return calibration


def resolve_calibration(option: Optional[str | os.PathLike], identity: dict) -> Optional[Calibration]:
    """The calibration an entry point uses for the model with `identity`: `option` None -> the file saved for
    that model if there is one; "none" -> no calibration; a path -> that file, refused unless it is this model's."""
    if option is not None and str(option).lower() == "none":
        return None
    path = find_calibration(identity) if option is None else Path(option)
    return None if path is None else load_calibration(path, identity)


def calibration_differs(summary: dict, calibration: Optional[Calibration], relabel: bool = False) -> Optional[str]:
    """Why a saved analysis (its summary.json) is not calibrated with `calibration` (None: uncalibrated is
    wanted; `relabel`: with the label map the calibrated probabilities give), or None when it is: what decides
    whether an analysis can be reused."""
    recorded = summary.get("calibration") or None
    if calibration is None:
        return None if recorded is None else f"it is calibrated (with {recorded.get('file')}), an uncalibrated one is wanted"
    if recorded is None:
        return f"it is not calibrated, {calibration.where} is wanted"
    if recorded.get("sha256") != calibration.sha256:
        return f"it is calibrated with another file ({recorded.get('file')}), {calibration.where} is wanted"
    if bool(recorded.get("relabel")) != relabel:
        return f"its label map is {'' if recorded.get('relabel') else 'not '}the calibrated one, the other is wanted"
    return None


def keep_saved_analysis(summary: dict, option: Optional[str | os.PathLike], calibration: Optional[Calibration], *,
                        replaceable: bool, where: str | os.PathLike, relabel: bool = False) -> bool:
    """Whether a front end reuses a saved analysis as it is (True) or analyses the case again (False), given the
    calibration option asked for (`option`, resolved to `calibration`); BadCalibrationError (one line) when it
    can do neither.

    The default (`option` None) reuses any saved analysis as it was made: a calibration fitted later applies to
    new analyses, and a review never changes its probabilities (and so its ranking) halfway. An explicit
    `--calibration FILE|none` that the analysis was not made with re-analyses it when it is `replaceable` (the
    review folder's own analysis, no review begun on it: nothing depends on it), and is refused otherwise."""
    if option is None:
        return True
    why = calibration_differs(summary, calibration, relabel)
    if why is None:
        return True
    if replaceable:
        return False
    raise BadCalibrationError(
        f"The analysis in {where} cannot be used with --calibration {option}: {why}, and a review has begun on it "
        "(or it is not the review folder's own). Leave --calibration out to continue it as it is, or analyse the case "
        "into an empty review folder.")


def calibration_record(calibration: Calibration, relabel: bool = False) -> dict:
    """What summary.json records of the calibration applied to an analysis."""
    return {"file": calibration.path, "sha256": calibration.sha256, "model_key": calibration.model_key,
            "methods": calibration.methods, "relabel": bool(relabel),
            "fitted_on": [entry.get("review") for entry in calibration.data["fitted_on"]],
            "created": calibration.data.get("created")}


# -- applying it ----------------------------------------------------------------------------------------
def apply_calibration(calibration: Calibration, analysis, relabel: bool = False):
    """A copy of `analysis` (an AnalysisResult or a LoadedAnalysis) with calibrated probabilities, the
    entropy recomputed from them and, with `relabel`, the label map they give; everything else as it was.

    A LoadedAnalysis is checked against the calibration's model and must not be calibrated already; its
    summary gets the record (`calibration_record`)."""
    summary = getattr(analysis, "summary", None)
    outputs = list(summary["outputs"]) if summary is not None else list(analysis.output_names)
    if outputs != calibration.outputs:
        raise BadCalibrationError(f"The calibration {calibration.where} is for the outputs {', '.join(calibration.outputs)}; "
                                  f"the analysis has {', '.join(outputs)}.")
    if summary is not None:
        if summary.get("calibration"):
            raise BadCalibrationError(f"The analysis is calibrated already (with {summary['calibration'].get('file')}); "
                                      "analyse the case again to calibrate it with another file.")
        recorded = (summary.get("identity") or {}).get("model")
        if not recorded:
            raise BadCalibrationError("The analysis records no model identity (written by an older version), so no "
                                      "calibration can be checked against it; analyse the case again.")
        check_model(calibration, recorded)
    probabilities = calibration.calibrate(analysis.probabilities)
    uncertainty = dict(analysis.uncertainty)
    entropy = predictive_entropy(probabilities, calibration.region_based)
    uncertainty["entropy"] = entropy.reshape(np.shape(analysis.uncertainty["entropy"])).astype(np.float32)
    changes: dict[str, Any] = {"probabilities": probabilities, "uncertainty": uncertainty}
    if relabel:
        changes["label_map"] = calibration.label_map(probabilities).astype(analysis.label_map.dtype)
    if summary is not None:
        changes["summary"] = {**summary, "calibration": calibration_record(calibration, relabel)}
    else:  # an AnalysisResult: write_analysis records it in summary.json
        changes["calibration"] = calibration_record(calibration, relabel)
    return dataclasses.replace(analysis, **changes)
