"""The expert's time model fitted from the site's review logs: seconds to look at a slice, seconds per mm.

Why: `ranking/correction_time.TimeModel` charges each visited slice `look_seconds + seconds_per_mm x
added path length`, and every ranking on the time axis (expected gain per second, the replays) rests
on its two constants, which are assumptions until a site's own reviews say otherwise. Every review
logs what a fit needs (`review.budget.jsonl`: seconds per visit; the corrected segmentation beside it).

What one slice contributes (`slice_timings`): the seconds of all its timed events (`budget_log.VISIT_KINDS`:
shown, skipped, corrected, marked corrected; the session splits a visit's time between them, so they add up),
how many visits it had (a visit ends with Next/Previous/Skip/Done; edits that no such event closed,
e.g. the last slice before the session was closed, count as one visit), and its added path length:
the prediction's slice against the final corrected slice, summed over the evaluation's regions
exactly as `iwuo evaluate` charges its simulated experts. A slice corrected on several visits is
charged one look per visit and its net boundary change once (the intermediate strokes are not kept).
Slices with a correction logged as `recovered` (after a crash) are left out: their time was lost.

The fit (`fit_time_model`): seconds = look x visits + seconds_per_mm x path, no intercept, by a Huber
M-estimator (k = 1.345) on relative residuals (timing noise grows with the time taken) with MAD scale,
by iteratively reweighted least squares, vectorised so that the bootstrap is cheap (sklearn's
HuberRegressor took 170 ms a fit on the shared 2-core machine, too slow for 1000 resamples). It estimates a typical time,
between the median and the mean of a slice's time. Idle gaps (a reviewer called away mid-slice)
only ever lengthen a visit: after a first fit, slices whose log(seconds / fitted seconds) lies more
than 4 robust standard deviations above the median are dropped and counted, and the model is fitted
again. Intervals: 95 % percentile bootstrap over slices (1000 resamples, fixed seed).

Minimum: MIN_SLICES timed slices, MIN_CHANGED_SLICES of them with a boundary change (three reviews of
the default 20-slice budget). Simulated sites (60 % of the slices corrected, 80 mm of path per
correction, log-normal timing noise sd 0.35, 30 sites per size) gave median 95 % intervals of
+-19 % / +-34 % (look / s per mm) at 30 slices, +-16 % / +-31 % at 40, +-14 % / +-23 % at 60 and
+-10 % / +-19 % at 100; 60 is where the seconds per mm is known to about a quarter, which
Testing/test_calibration.py checks. Fewer slices are refused with one line saying how many are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import BadCalibrationError, BadInputError
from ..ranking.correction_time import TimeModel
from .budget_log import VISIT_KINDS

MIN_SLICES = 60
MIN_CHANGED_SLICES = 30
HUBER_K = 1.345
IDLE_SDS = 4.0
BOOTSTRAP = 1000


@dataclass(frozen=True)
class SliceTiming:
    """What one visited slice of one review contributes to the fit."""

    review: str
    slice: int
    seconds: float
    visits: int
    path_mm: float


def _is_edit(event: dict) -> bool:
    return event["kind"] == "slice_corrected" and bool(event.get("voxels_added") or event.get("voxels_removed"))


def slice_timings(events: list[dict], path_mm: np.ndarray, review: str = "") -> tuple[list[SliceTiming], int]:
    """Per visited slice: seconds, visits and added path length (`path_mm[slice]`); and how many slices
    were left out because a correction on them was recovered after a crash."""
    seconds: dict[int, float] = {}
    visits: dict[int, int] = {}
    open_edits: set[int] = set()
    recovered: set[int] = set()
    for event in events:
        if event["kind"] == "session_started":  # a resumed session: edits left open before it were a visit
            for s in open_edits:
                visits[s] = visits.get(s, 0) + 1
            open_edits.clear()
        if event["kind"] not in VISIT_KINDS or "slice" not in event:
            continue
        s = int(event["slice"])
        if not 0 <= s < len(path_mm):
            continue
        if event.get("recovered"):
            recovered.add(s)
            continue
        seconds[s] = seconds.get(s, 0.0) + float(event.get("seconds") or 0.0)
        if _is_edit(event):
            open_edits.add(s)
        else:  # Next/Previous (slice_shown), Skip, Done: the visit ends
            visits[s] = visits.get(s, 0) + 1
            open_edits.discard(s)
    for s in open_edits:
        visits[s] = visits.get(s, 0) + 1
    timings = [SliceTiming(review, s, seconds[s], visits[s], float(path_mm[s]))
               for s in sorted(seconds) if s not in recovered and visits.get(s)]
    return timings, len(recovered)


def _weighted_solve(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares of y on the two columns of x, per resample: x (B, n, 2), y and w (B, n) -> (B, 2)."""
    v, p = x[..., 0], x[..., 1]
    svv, svp, spp = (w * v * v).sum(1), (w * v * p).sum(1), (w * p * p).sum(1)
    svy, spy = (w * v * y).sum(1), (w * p * y).sum(1)
    spp = spp + 1e-12 * (svv + spp)  # a resample without any boundary change: seconds per mm 0, not a crash
    det = svv * spp - svp * svp
    return np.stack([(spp * svy - svp * spy) / det, (svv * spy - svp * svy) / det], axis=1)


def huber_fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Huber M-estimate without intercept per resample (x (B, n, 2), y (B, n)), by IRLS on relative residuals
    (y - fit) / fit with MAD scale: timing noise grows with the time taken, so each slice counts by its
    relative error."""
    beta = _weighted_solve(x, y, np.ones_like(y))
    for _ in range(iterations):
        fitted = np.maximum(np.einsum("bni,bi->bn", x, beta), 1e-3)
        relative = (y - fitted) / fitted
        scale = np.maximum(1.4826 * np.median(np.abs(relative), axis=1, keepdims=True), 1e-9)
        u = np.abs(relative) / (HUBER_K * scale)
        weight = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12)) / fitted ** 2
        new = _weighted_solve(x, y, weight)
        done = np.allclose(new, beta, rtol=1e-6, atol=1e-9)
        beta = new
        if done:
            break
    return beta


@dataclass
class TimeModelFit:
    """A fitted time model with its intervals and what it was fitted on."""

    look_seconds: float
    seconds_per_mm: float
    look_seconds_ci95: tuple[float, float]
    seconds_per_mm_ci95: tuple[float, float]
    slices: int  # timed slices used
    slices_changed: int  # of them, slices with a boundary change
    idle_dropped: int  # slices dropped as idle gaps
    recovered_left_out: int = 0
    reviews: list[str] = field(default_factory=list)

    def time_model(self) -> TimeModel:
        return TimeModel(look_seconds=self.look_seconds, seconds_per_mm=self.seconds_per_mm)

    def to_json(self) -> dict:
        return {"look_seconds": round(self.look_seconds, 4), "seconds_per_mm": round(self.seconds_per_mm, 6),
                "look_seconds_ci95": [round(v, 4) for v in self.look_seconds_ci95],
                "seconds_per_mm_ci95": [round(v, 6) for v in self.seconds_per_mm_ci95],
                "slices": self.slices, "slices_changed": self.slices_changed, "idle_dropped": self.idle_dropped,
                "recovered_left_out": self.recovered_left_out, "reviews": self.reviews,
                "method": f"Huber (k={HUBER_K}, relative residuals, MAD scale) of seconds on visits and added path "
                          f"length (mm), no intercept; idle gaps: log(seconds/fit) above median + {IDLE_SDS:g} robust sd; "
                          f"95 % percentile bootstrap over slices ({BOOTSTRAP} resamples)"}


def _check_enough(n: int, changed: int, dropped: int) -> None:
    if n < MIN_SLICES or changed < MIN_CHANGED_SLICES:
        idle = f" after {dropped} idle gap(s) were dropped" if dropped else ""
        raise BadInputError(f"The reviews log {n} timed slice(s), {changed} with a boundary change{idle}; the time model "
                            f"needs at least {MIN_SLICES}, {MIN_CHANGED_SLICES} with a change: review more slices, then "
                            "fit again.")


def fit_time_model(timings: list[SliceTiming], recovered_left_out: int = 0, seed: int = 0) -> TimeModelFit:
    """Fit look seconds and seconds per mm from per-slice timings; refuse (one line) too few slices."""
    y = np.asarray([t.seconds for t in timings], float)
    x = np.asarray([[t.visits, t.path_mm] for t in timings], float).reshape(-1, 2)
    _check_enough(len(y), int((x[:, 1] > 0).sum()), 0)
    if not (y > 0).any():
        raise BadInputError(f"The reviews log no time for any of their {len(y)} visited slices (every visit 0 s): a "
                            "time model cannot be fitted from them.")
    first = huber_fit(x[None], y[None])[0]
    fitted = np.maximum(x @ first, 1e-3)
    ratio = np.log(np.maximum(y, 1e-3) / fitted)
    centre = np.median(ratio)
    cap = centre + IDLE_SDS * 1.4826 * np.median(np.abs(ratio - centre))
    keep = ratio <= cap
    x, y = x[keep], y[keep]
    dropped = int((~keep).sum())
    _check_enough(len(y), int((x[:, 1] > 0).sum()), dropped)
    look, per_mm = huber_fit(x[None], y[None])[0]
    index = np.random.default_rng(seed).integers(0, len(y), (BOOTSTRAP, len(y)))
    boot = huber_fit(x[index], y[index])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return TimeModelFit(look_seconds=float(look), seconds_per_mm=float(per_mm),
                        look_seconds_ci95=(float(low[0]), float(high[0])),
                        seconds_per_mm_ci95=(float(low[1]), float(high[1])), slices=len(y),
                        slices_changed=int((x[:, 1] > 0).sum()), idle_dropped=dropped,
                        recovered_left_out=recovered_left_out, reviews=sorted({t.review for t in timings}))


def load_time_model(path, calibration: Optional[object] = None) -> TimeModel:
    """The TimeModel of a calibration file (what `iwuo evaluate --time-model FILE` reads). It describes the
    site's reviewers, not the model, so any model's replay may use it; a file without one is refused."""
    from ..data.calibration import load_calibration

    calibration = calibration or load_calibration(path)
    section = calibration.data.get("time_model")
    if not isinstance(section, dict) or not all(isinstance(section.get(k), (int, float)) and section[k] > 0
                                                for k in ("look_seconds", "seconds_per_mm")):
        why = calibration.data.get("time_model_refused") or "it holds no time model"
        raise BadCalibrationError(f"The calibration file {path} has no time model: {why}")
    return TimeModel(look_seconds=float(section["look_seconds"]), seconds_per_mm=float(section["seconds_per_mm"]))
