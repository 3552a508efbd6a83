"""Region metrics: Dice and HD95 per region (a model's structures or BraTS regions), with stated conventions.

HD95 comes from MedPy (`medpy.metric.binary.hd95`): a maintained, dependency-light
implementation that takes voxel spacing and is widely used in BraTS evaluations. Conventions:
both masks empty -> Dice 1 and HD95 0 mm; exactly one empty -> Dice 0 and HD95 NaN (left out of
means; BraTS' own tables substitute a large constant instead).
"""

from __future__ import annotations

import numpy as np

from ..data.structures import EvaluationRegion
from ..ranking.slice_counts import dice
from ..ranking.slice_scores import BRATS_REGIONS, region_mask


def hd95(pred: np.ndarray, truth: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float("nan")
    from medpy.metric.binary import hd95 as medpy_hd95

    return float(medpy_hd95(pred, truth, voxelspacing=tuple(float(s) for s in spacing_xyz[::-1])))


def region_metrics(label_map: np.ndarray, reference: np.ndarray, spacing_xyz: tuple[float, float, float],
                   regions=tuple(BRATS_REGIONS)) -> dict[str, dict[str, float]]:
    """Dice and HD95 per region: BraTS 2013 region names, a mapping name -> label values, or name ->
    EvaluationRegion (the model's structure in the prediction, the reference's own values in the reference)."""
    out = {}
    items = regions.items() if isinstance(regions, dict) else ((r, r) for r in regions)
    for region, spec in items:
        if isinstance(spec, EvaluationRegion):
            p, t = spec.structure.mask(label_map), spec.reference_mask(reference)
        else:
            p, t = region_mask(label_map, spec), region_mask(reference, spec)
        out[region] = {"dice": float(dice((p & t).sum(), (p & ~t).sum(), (~p & t).sum())),
                       "hd95_mm": hd95(p, t, spacing_xyz)}
    return out
