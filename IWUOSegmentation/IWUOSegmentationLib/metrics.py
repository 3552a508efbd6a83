"""Region metrics: Dice and HD95 per BraTS region, with stated conventions.

HD95 comes from MedPy (`medpy.metric.binary.hd95`): a maintained, dependency-light
implementation that takes voxel spacing and is widely used in BraTS evaluations. Conventions:
both masks empty -> Dice 1 and HD95 0 mm; exactly one empty -> Dice 0 and HD95 NaN (left out of
means; BraTS' own tables substitute a large constant instead).
"""

from __future__ import annotations

import numpy as np

from .replay import dice
from .slice_scores import BRATS_REGIONS, region_mask


def hd95(pred: np.ndarray, truth: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float("nan")
    from medpy.metric.binary import hd95 as medpy_hd95

    return float(medpy_hd95(pred, truth, voxelspacing=tuple(float(s) for s in spacing_xyz[::-1])))


def region_metrics(label_map: np.ndarray, reference: np.ndarray, spacing_xyz: tuple[float, float, float],
                   regions: tuple[str, ...] = tuple(BRATS_REGIONS)) -> dict[str, dict[str, float]]:
    out = {}
    for region in regions:
        p, t = region_mask(label_map, region), region_mask(reference, region)
        out[region] = {"dice": float(dice((p & t).sum(), (p & ~t).sum(), (~p & t).sum())),
                       "hd95_mm": hd95(p, t, spacing_xyz)}
    return out
