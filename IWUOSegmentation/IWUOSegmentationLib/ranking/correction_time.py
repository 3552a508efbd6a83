"""How long a slice correction takes: the expert time model that the time-axis rankings expect and
the simulated experts are charged by.

seconds = look time + cost per mm of contour the expert adds or
moves (the "added path length", APL), per slice: Vaassen et al. 2020 (Phys Imaging Radiat Oncol
13:1-6) and Kiser et al. 2021 (J Digit Imaging 34:541-553) found APL, not volume Dice, to track
correction time (rho about 0.7). The two constants are modelling assumptions, not fitted values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def in_plane_spacing(spacing_xyz, axis: int) -> tuple[float, float]:
    """(row, column) pixel size in mm of slices along array `axis` (arrays are z, y, x)."""
    zyx = np.asarray(spacing_xyz, float)[::-1]
    rest = [float(s) for i, s in enumerate(zyx) if i != axis]
    return rest[0], rest[1]


def contour(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D mask that touch the background (4-neighbourhood)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def added_path_length(pred_slice: np.ndarray, corrected_slice: np.ndarray, pixel_mm: float) -> float:
    """Length (mm) of the corrected contour that is not on the predicted contour (Vaassen 2020).

    A contour pixel within one pixel of the old contour counts as kept (one-pixel tolerance, as in
    Vaassen's definition); erasing a whole island adds no contour.
    """
    if not (pred_slice ^ corrected_slice).any():
        return 0.0
    kept = ndimage.binary_dilation(contour(pred_slice), structure=np.ones((3, 3), bool))
    return float((contour(corrected_slice) & ~kept).sum()) * pixel_mm


@dataclass
class TimeModel:
    """seconds per visited slice = look_seconds + seconds_per_mm x added path length (summed over regions)."""

    look_seconds: float = 8.0  # assumption: find the slice, scroll, judge it
    seconds_per_mm: float = 0.15  # assumption: tracing speed of a few mm per second with the brush/contour tool

    def seconds(self, pred_slice: np.ndarray, corrected_slice: np.ndarray, pixel_mm: float) -> float:
        return self.look_seconds + self.seconds_per_mm * added_path_length(pred_slice, corrected_slice, pixel_mm)


def path_length_per_slice(pred: np.ndarray, corrected: np.ndarray, axis: int, spacing_xyz) -> np.ndarray:
    """Added path length (mm) of every slice along `axis`; slices the expert left alone cost 0 mm."""
    pixel_mm = float(np.sqrt(np.prod(in_plane_spacing(spacing_xyz, axis))))
    p, c = np.moveaxis(pred, axis, 0), np.moveaxis(corrected, axis, 0)
    changed = np.nonzero((p ^ c).reshape(len(p), -1).any(1))[0]
    out = np.zeros(len(p))
    for s in changed:
        out[s] = added_path_length(p[s], c[s], pixel_mm)
    return out
