"""Which errors a correcting clinician would fix, estimated from the probabilities alone.

A clinician correcting a prediction does not redraw it: they fix the error pieces they notice
and leave boundary disagreements inside the inter-rater band alone (the simulated correcting
expert, simulation/experts.py, does exactly that with the same `NoticeModel`). Impact counts
every voxel's error probability, so most of what it expects to gain lies in thin bands along
the predicted boundary that such a clinician never touches. The noticed gain counts only the
error probability of voxels that lie in a piece the clinician would notice:

* pieces: connected components (8-neighbourhood, per slice) of the uncertain voxels
  (tau < p < 1 - tau), false-positive candidates (predicted) and misses (not predicted) apart;
* reach: if a piece is wrong, the true boundary lies about where the confident voxels of the
  other kind begin (p >= 1 - tau for a false positive: the truth is there; p <= tau for a
  miss: the truth ends there); a piece reaches as far from it as its farthest voxel, in mm
  (infinite when the slice has no such confident voxel);
* noticed: reach > distance tolerance (beyond the inter-rater band) and area >= minimum area.

Each term can be switched off (`use_reach`, `use_size`) for the ablation in the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: 8-neighbourhood in a slice: the connectivity of error pieces (the simulated expert uses the same).
PIECE_CONNECTIVITY = np.ones((3, 3), bool)


@dataclass(frozen=True)
class NoticeModel:
    """What a clinician bothers to fix: pieces reaching beyond the inter-rater band, large enough to see.

    distance_tolerance_mm: disagreement within this distance of the boundary is a matter of taste
    between raters (the tolerance idea of the surface Dice, Nikolov et al. 2021); it equals the
    largest boundary displacement of the simulated expert's belief. min_area_mm2: smaller specks
    go unnoticed at normal zoom (assumption: about a 4 x 4 mm speck). confident: voxels with
    p <= confident or p >= 1 - confident count as certain.
    """

    distance_tolerance_mm: float = 4.0
    min_area_mm2: float = 16.0
    confident: float = 0.05


def half_pixel_mm(sampling: tuple[float, float]) -> float:
    return 0.5 * float(np.sqrt(sampling[0] * sampling[1]))


def signed_distance_mm(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """mm from the boundary of a 2-D mask (between pixel centres): negative inside, positive outside."""
    half = half_pixel_mm(sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling) - half
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling) - half
    return np.where(mask, -inside, outside)


def distance_to_mm(target: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """mm from each pixel to the nearest pixel of `target` minus half a pixel (infinite if `target` is empty)."""
    if not target.any():
        return np.full(target.shape, np.inf)
    return ndimage.distance_transform_edt(~target, sampling=sampling) - half_pixel_mm(sampling)


@dataclass
class CandidatePieces:
    """The candidate error pieces of one kind on one slice: their labels, areas (mm2) and reach (mm)."""

    labels: np.ndarray
    area_mm2: np.ndarray
    reach_mm: np.ndarray

    def noticed(self, notice: NoticeModel, use_reach: bool = True, use_size: bool = True) -> np.ndarray:
        keep = np.ones(len(self.area_mm2), bool)
        if use_size:
            keep &= self.area_mm2 >= notice.min_area_mm2
        if use_reach:
            keep &= self.reach_mm > notice.distance_tolerance_mm
        return np.concatenate([[False], keep])[self.labels]


def candidate_pieces(prob: np.ndarray, pred: np.ndarray, sampling: tuple[float, float],
                     notice: NoticeModel) -> list[CandidatePieces]:
    """False-positive and missed candidate pieces of one slice (uncertain voxels, predicted or not)."""
    uncertain = (prob > notice.confident) & (prob < 1.0 - notice.confident)
    pixel_area = float(sampling[0] * sampling[1])
    out = []
    for candidates, confident_other in ((uncertain & pred, prob >= 1.0 - notice.confident),
                                        (uncertain & ~pred, prob <= notice.confident)):
        if not candidates.any():
            continue
        labels, n = ndimage.label(candidates, structure=PIECE_CONNECTIVITY)
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:] * pixel_area
        reach = np.asarray(ndimage.maximum(distance_to_mm(confident_other, sampling), labels, np.arange(1, n + 1)),
                           float)
        out.append(CandidatePieces(labels, area, reach))
    return out


@dataclass
class NoticedErrors:
    """Per slice: expected misses and false positives inside noticed pieces (voxels), with each term off in turn."""

    fn: dict[str, np.ndarray]  # variant -> per-slice expected noticed misses
    fp: dict[str, np.ndarray]  # variant -> per-slice expected noticed false positives


#: Ablation variants of the noticed gain: both terms, then each one switched off.
NOTICE_VARIANTS = {"full": (True, True), "no_reach": (False, True), "no_size": (True, False)}


def noticed_errors_per_slice(prob: np.ndarray, pred: np.ndarray, axis: int, sampling: tuple[float, float],
                             notice: NoticeModel) -> NoticedErrors:
    """Expected noticed errors of every slice along `axis` for one structure (probability and prediction)."""
    p = np.moveaxis(prob, axis, 0).astype(np.float64)
    m = np.moveaxis(pred, axis, 0)
    n = p.shape[0]
    fn = {v: np.zeros(n) for v in NOTICE_VARIANTS}
    fp = {v: np.zeros(n) for v in NOTICE_VARIANTS}
    uncertain_slices = np.nonzero(((p > notice.confident) & (p < 1.0 - notice.confident)).reshape(n, -1).any(1))[0]
    for s in uncertain_slices:
        pieces = candidate_pieces(p[s], m[s], sampling, notice)
        for variant, (use_reach, use_size) in NOTICE_VARIANTS.items():
            seen = np.zeros(p[s].shape, bool)
            for kind in pieces:
                seen |= kind.noticed(notice, use_reach, use_size)
            fn[variant][s] = p[s][seen & ~m[s]].sum()
            fp[variant][s] = (1.0 - p[s][seen & m[s]]).sum()
    return NoticedErrors(fn, fp)
