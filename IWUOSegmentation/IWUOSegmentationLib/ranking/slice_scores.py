"""Per-slice uncertainty, impact (expected Dice gain from correcting the slice) and IWUO.

Impact of slice s for a region, without ground truth: the Dice gain from replacing the
prediction P on slice s by the truth G is about [(2-D) FN_s + D FP_s] / (|G| + |P|). The
expectations come from the voxel probabilities p: E[FN_s] = sum of p over predicted-negative
voxels of s, E[FP_s] = sum of (1-p) over predicted-positive voxels, E|G| = sum of p, and D is
the model's expected Dice 2 sum_P p / (E|G| + |P|).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..data.structures import (
    BRATS_CONVENTIONS,
    ModelStructures,
    Structure,
    structures_from_labels,
    structures_from_summary,
)
from ..errors import BadInputError
from .correction_time import in_plane_spacing
from .noticed_errors import NoticedErrors, NoticeModel, noticed_errors_per_slice

#: BraTS 2013-2015 evaluation regions over the label values (other years: structures.BRATS_CONVENTIONS).
BRATS_REGIONS = dict(BRATS_CONVENTIONS["brats2013"]["regions"])


def slice_axis(spacing_xyz: tuple[float, float, float]) -> int:
    """Array axis (z, y, x order) of the coarsest spacing; axial (0) when isotropic."""
    sp_zyx = np.asarray(spacing_xyz, float)[::-1]
    coarsest = float(sp_zyx.max())
    return 0 if np.isclose(sp_zyx[0], coarsest, rtol=1e-3) else int(np.argmax(sp_zyx))


def region_mask(label_map: np.ndarray, region: Structure | tuple[int, ...] | str) -> np.ndarray:
    """Voxels of a region: a Structure, a tuple of label values, or (old callers) a BraTS 2013 region name."""
    if isinstance(region, Structure):
        return region.mask(label_map)
    values = BRATS_REGIONS[region] if isinstance(region, str) else region
    return np.isin(label_map, values)


def model_structures(output_names: list[str], region_based: bool, label_values: dict[str, int] | None = None,
                     labels: dict | None = None) -> ModelStructures:
    """Structures from an analysis' outputs: `labels` (dataset.json's) when known, else label values by name."""
    if labels:
        return structures_from_labels(labels, region_based, output_names)
    if label_values and not region_based:
        return structures_from_labels({n: label_values.get(n, i) for i, n in enumerate(output_names)}, False)
    return structures_from_summary({"outputs": output_names, "region_based": region_based})


def region_probability(probabilities: np.ndarray, output_names: list[str], region_based: bool,
                       region: Structure | str | None = None, label_values: dict[str, int] | None = None) -> np.ndarray:
    """P(voxel in region): a region model's channel, or the sum of a label model's class channels."""
    if not isinstance(region, Structure):
        region = model_structures(output_names, region_based, label_values).get(region)
    return region.probability(probabilities)


@dataclass
class ScoreOptions:
    """Switches for the slice scores (each term can be turned off for ablation)."""

    uncertainty_map: str = "entropy"
    aggregate: str = "mean"  # mean | sum | topk
    topk_percentile: float = 90.0
    uncertain_threshold: float = 0.05
    impact_exponent: float = 1.0
    uncertainty_exponent: float = 1.0
    presence_weight: bool = False
    boundary_weight: bool = False


@dataclass
class SliceScores:
    axis: int
    impact: np.ndarray
    uncertainty: np.ndarray
    iwuo: np.ndarray
    predicted_area: np.ndarray
    expected_dice: float
    options: ScoreOptions = field(default_factory=ScoreOptions)
    #: Expected per-slice TP, FP, FN from the probabilities (for the greedy expected-gain ranking).
    expected_tp: np.ndarray | None = None
    expected_fp: np.ndarray | None = None
    expected_fn: np.ndarray | None = None
    #: E|G| + |P|, the denominator of the expected Dice gain.
    gain_denominator: float = 0.0
    #: Expected errors inside pieces a correcting clinician would notice (ranking/noticed_errors.py).
    noticed: NoticedErrors | None = None

    def noticed_impact(self, variant: str = "full") -> np.ndarray:
        """Expected Dice gain from the noticed errors only (`variant`: full, no_reach, no_size)."""
        if self.noticed is None:
            raise BadInputError("These slice scores were computed without the noticed errors.")
        return expected_gain(self.noticed.fn[variant], self.noticed.fp[variant], self.expected_dice,
                             self.gain_denominator)

    def noticed_error_area(self) -> np.ndarray:
        """Expected noticed error area per slice (voxels): what the per-second form charges path length for."""
        return self.noticed.fn["full"] + self.noticed.fp["full"]


def _per_slice_sum(array: np.ndarray, axis: int) -> np.ndarray:
    return array.sum(axis=tuple(a for a in range(array.ndim) if a != axis), dtype=np.float64)


def expected_gain(e_fn: np.ndarray, e_fp: np.ndarray, d: float, denominator: float) -> np.ndarray:
    """Dice gain of removing E[FN] misses and E[FP] false positives: [(2-D) FN + D FP] / (E|G| + |P|)."""
    if denominator <= 0:
        return np.zeros_like(np.asarray(e_fn, float))
    return ((2.0 - d) * np.asarray(e_fn, float) + d * np.asarray(e_fp, float)) / denominator


def impact_per_slice(prob: np.ndarray, pred: np.ndarray, axis: int) -> tuple[np.ndarray, float]:
    """Expected Dice gain per slice and the model's expected Dice D."""
    p = prob.astype(np.float64)
    e_fn = _per_slice_sum(np.where(pred, 0.0, p), axis)
    e_fp = _per_slice_sum(np.where(pred, 1.0 - p, 0.0), axis)
    e_g, n_p = float(p.sum()), float(pred.sum())
    denom = e_g + n_p
    if denom <= 0:
        return np.zeros(prob.shape[axis]), 1.0
    d = 2.0 * float(p[pred].sum()) / denom
    return expected_gain(e_fn, e_fp, d, denom), d


def uncertainty_per_slice(umap: np.ndarray, prob: np.ndarray, pred: np.ndarray, axis: int,
                          options: ScoreOptions) -> np.ndarray:
    """Aggregate a voxel uncertainty map per slice over predicted-foreground-or-uncertain voxels."""
    moved = np.moveaxis(umap, axis, 0).reshape(umap.shape[axis], -1)
    if options.aggregate == "sum":
        return moved.sum(1, dtype=np.float64)
    relevant = np.moveaxis(pred | ((prob > options.uncertain_threshold) & (prob < 1 - options.uncertain_threshold)),
                           axis, 0).reshape(umap.shape[axis], -1)
    out = np.zeros(umap.shape[axis])
    for s in range(umap.shape[axis]):
        values = moved[s][relevant[s]]
        if values.size:
            out[s] = values.mean() if options.aggregate == "mean" else np.percentile(values, options.topk_percentile)
    if options.aggregate not in ("mean", "topk"):
        raise BadInputError(f"Unknown aggregate {options.aggregate!r}: use mean, sum or topk.")
    return out


def boundary_complexity(pred: np.ndarray, axis: int) -> np.ndarray:
    """Perimeter-to-area ratio of the predicted mask in each slice (0 for empty slices)."""
    moved = np.moveaxis(pred, axis, 0)
    out = np.zeros(moved.shape[0])
    for s, sl in enumerate(moved):
        area = sl.sum()
        if area:
            out[s] = (sl & ~ndimage.binary_erosion(sl)).sum() / area
    return out


def score_slices(prob: np.ndarray, pred: np.ndarray, umap: np.ndarray, axis: int,
                 options: ScoreOptions | None = None, sampling: tuple[float, float] = (1.0, 1.0),
                 notice: NoticeModel | None = None) -> SliceScores:
    """Impact, uncertainty and IWUO = impact^a x uncertainty^b for every slice along `axis`, and the expected
    errors a correcting clinician would notice (`sampling`: the slices' pixel size in mm)."""
    options = options or ScoreOptions()
    if not (prob.shape == pred.shape == umap.shape):
        raise BadInputError(f"Probability {prob.shape}, prediction {pred.shape} and uncertainty {umap.shape} "
                            "maps must share one grid.")
    impact, d = impact_per_slice(prob, pred, axis)
    unc = uncertainty_per_slice(umap, prob, pred, axis, options)
    weight = np.ones_like(impact)
    if options.presence_weight:
        weight *= np.clip(_per_slice_sum(prob, axis) / max(float(_per_slice_sum(prob, axis).max()), 1e-9), 0, 1)
    if options.boundary_weight:
        weight *= 1.0 + boundary_complexity(pred, axis)
    iwuo = np.power(impact, options.impact_exponent) * np.power(unc, options.uncertainty_exponent) * weight
    p = prob.astype(np.float64)
    return SliceScores(axis=axis, impact=impact, uncertainty=unc, iwuo=iwuo,
                       predicted_area=_per_slice_sum(pred, axis), expected_dice=d, options=options,
                       expected_tp=_per_slice_sum(np.where(pred, p, 0.0), axis),
                       expected_fp=_per_slice_sum(np.where(pred, 1.0 - p, 0.0), axis),
                       expected_fn=_per_slice_sum(np.where(pred, 0.0, p), axis),
                       gain_denominator=float(p.sum()) + float(pred.sum()),
                       noticed=noticed_errors_per_slice(p, pred, axis, sampling, notice or NoticeModel()))


def iwuo_ranking(label_map: np.ndarray, probabilities: np.ndarray, output_names: list[str], region_based: bool,
                 uncertainty: np.ndarray, spacing_xyz: tuple[float, float, float],
                 region: Structure | str | None = None, options: ScoreOptions | None = None, limit: int | None = None,
                 label_values: dict[str, int] | None = None,
                 structures: ModelStructures | None = None) -> tuple[int, SliceScores, list[dict]]:
    """Slices to review for one target structure, best first: (axis, scores, rows of slice/iwuo/impact/uncertainty).

    `region` is the review target: a Structure, a structure name of the model (`structures`, else derived from
    the outputs), or None for the default target (all foreground)."""
    axis = slice_axis(spacing_xyz)
    if not isinstance(region, Structure):
        region = (structures or model_structures(output_names, region_based, label_values)).get(region)
    scores = score_slices(region.probability(probabilities), region.mask(label_map), uncertainty, axis, options,
                          in_plane_spacing(spacing_xyz, axis))
    order = np.argsort(-scores.iwuo, kind="stable")[:limit]
    rows = [{"slice": int(s), "iwuo": float(scores.iwuo[s]), "impact": float(scores.impact[s]),
             "uncertainty": float(scores.uncertainty[s])} for s in order]
    return axis, scores, rows


def member_disagreement_per_slice(member_variance: np.ndarray, prob: np.ndarray, axis: int) -> np.ndarray:
    """1 - expected pairwise Dice between two ensemble members on each slice (Zenk et al. 2025).

    Per-member masks are not stored (the members are streamed), so the pairwise Dice comes from
    the per-region member variance: two members with votes a, b disagree on a voxel with
    probability E|a-b| = 2 var for binary votes, and E(|A|+|B|) = 2 sum p, so
    1 - E[pairwise Dice] is about sum var / sum p on the slice. With soft member probabilities the
    variance is that of the probabilities (a proxy that underestimates vote disagreement).
    """
    var = _per_slice_sum(member_variance.astype(np.float64), axis)
    size = _per_slice_sum(prob.astype(np.float64), axis)
    return var / (size + 1.0)


def expected_error_area_per_slice(prob: np.ndarray, pred: np.ndarray, axis: int) -> np.ndarray:
    """E[FN_s] + E[FP_s] in voxels: the expected mis-labelled area of each slice."""
    p = prob.astype(np.float64)
    return _per_slice_sum(np.where(pred, 1.0 - p, p), axis)
