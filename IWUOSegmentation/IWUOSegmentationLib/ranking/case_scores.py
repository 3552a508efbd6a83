"""Ground-truth-free scores of every slice over all regions at once.

A clinician on a slice fixes every label there, so one ranking serves all regions: the
combined scores add the regions' expected Dice gains (impact) and IWUO products. Beside them:
the expected correction time of each slice (look time + cost of the expected added path length,
the time model of correction_time.py applied to the expected error area) and the members' pairwise
disagreement (Zenk et al. 2025); and the same gain and time counting only the errors a correcting
clinician would notice (noticed_errors.py), with each of its terms switched off for the ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .correction_time import TimeModel, in_plane_spacing
from .noticed_errors import NoticeModel
from .slice_counts import SliceCounts
from .slice_scores import ScoreOptions, SliceScores, expected_error_area_per_slice, member_disagreement_per_slice, score_slices


def expected_path_length(error_area_px: np.ndarray, pixel_mm: float) -> np.ndarray:
    """mm of contour to add for an expected error area: a half-disc on the boundary has APL sqrt(2 pi A)."""
    return pixel_mm * np.sqrt(2.0 * np.pi * np.clip(error_area_px, 0.0, None))


@dataclass
class CaseScores:
    """Per-region slice scores plus the combined per-slice quantities the rankings use."""

    axis: int
    regions: dict[str, SliceScores]
    disagreement: dict[str, np.ndarray]
    expected_seconds: np.ndarray
    #: Expected seconds of the noticed errors only (look + path length of the noticed error area).
    noticed_seconds: np.ndarray | None = None

    def _sum(self, name: str) -> np.ndarray:
        return np.sum([getattr(s, name) for s in self.regions.values()], axis=0)

    @property
    def impact(self) -> np.ndarray:
        return self._sum("impact")

    @property
    def iwuo(self) -> np.ndarray:
        return self._sum("iwuo")

    @property
    def uncertainty(self) -> np.ndarray:
        return np.mean([s.uncertainty for s in self.regions.values()], axis=0)

    @property
    def predicted_area(self) -> np.ndarray:
        return self._sum("predicted_area")

    @property
    def noticed_gain(self) -> np.ndarray:
        """Expected Dice gain (summed over regions) from the errors a correcting clinician would fix."""
        return np.sum([s.noticed_impact("full") for s in self.regions.values()], axis=0)

    @property
    def noticed_gain_no_reach(self) -> np.ndarray:
        """Ablation: the noticed gain without the reach term (pieces judged by size only)."""
        return np.sum([s.noticed_impact("no_reach") for s in self.regions.values()], axis=0)

    @property
    def noticed_gain_no_size(self) -> np.ndarray:
        """Ablation: the noticed gain without the size term (pieces judged by reach only)."""
        return np.sum([s.noticed_impact("no_size") for s in self.regions.values()], axis=0)

    @property
    def noticed_gain_per_second(self) -> np.ndarray:
        """The noticed gain per expected second of correcting the noticed errors."""
        seconds = self.noticed_seconds if self.noticed_seconds is not None else self.expected_seconds
        return self.noticed_gain / seconds

    @property
    def member_disagreement(self) -> np.ndarray:
        return np.mean(list(self.disagreement.values()), axis=0)

    @property
    def iwuo_disagreement(self) -> np.ndarray:
        return np.sum([self.regions[r].impact * self.disagreement[r] for r in self.regions], axis=0)

    def expected_counts(self) -> dict[str, SliceCounts]:
        """Expected per-slice counts before and after a perfect correction (E|G_s| true positives, no errors)."""
        out = {}
        for name, s in self.regions.items():
            zero = np.zeros_like(s.expected_tp)
            out[name] = SliceCounts(s.expected_tp, s.expected_fp, s.expected_fn,
                                    s.expected_tp + s.expected_fn, zero, zero)
        return out

    def only(self, region: str) -> CaseScores:
        """The same scores restricted to one region (per-region rankings)."""
        return CaseScores(self.axis, {region: self.regions[region]}, {region: self.disagreement[region]},
                          self.expected_seconds, self.noticed_seconds)

    @classmethod
    def from_slice_scores(cls, scores: SliceScores, time_model: TimeModel | None = None) -> CaseScores:
        """One region's scores without member statistics (disagreement falls back to its uncertainty)."""
        time_model = time_model or TimeModel()
        look = np.full(len(scores.impact), time_model.look_seconds)
        return cls(scores.axis, {"": scores}, {"": np.asarray(scores.uncertainty, float)}, look, look)


def score_case(probabilities: dict[str, np.ndarray], predictions: dict[str, np.ndarray], uncertainty: np.ndarray,
               axis: int, spacing_xyz=(1.0, 1.0, 1.0), member_variance: dict[str, np.ndarray] | None = None,
               options: ScoreOptions | None = None, time_model: TimeModel | None = None,
               notice: NoticeModel | None = None) -> CaseScores:
    """Score every region (dicts keyed by region name, arrays on one grid) and combine them; `notice`: what the
    correcting clinician the noticed gain is built for would fix (default: NoticeModel())."""
    time_model = time_model or TimeModel()
    sampling = in_plane_spacing(spacing_xyz, axis)
    pixel_mm = float(np.sqrt(np.prod(sampling)))
    per_region, disagreement = {}, {}
    path = np.zeros(uncertainty.shape[axis])
    noticed_path = np.zeros(uncertainty.shape[axis])
    for name, prob in probabilities.items():
        pred = predictions[name]
        per_region[name] = score_slices(prob, pred, uncertainty, axis, options, sampling, notice)
        if member_variance is not None and name in member_variance:
            disagreement[name] = member_disagreement_per_slice(member_variance[name], prob, axis)
        else:
            disagreement[name] = per_region[name].uncertainty
        path += expected_path_length(expected_error_area_per_slice(prob, pred, axis), pixel_mm)
        noticed_path += expected_path_length(per_region[name].noticed_error_area(), pixel_mm)
    return CaseScores(axis, per_region, disagreement, time_model.look_seconds + time_model.seconds_per_mm * path,
                      time_model.look_seconds + time_model.seconds_per_mm * noticed_path)
