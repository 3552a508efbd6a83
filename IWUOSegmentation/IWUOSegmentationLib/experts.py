"""Simulated experts: what a corrected slice looks like, and how long correcting it takes.

PerfectExpert replaces the slice by the reference. NoisyExpert draws the reference's boundary
with inter-rater-like disagreement: boundary-band voxels flip where a smooth random field is
high, which gives a corrected slice a Dice of about 0.85-0.90 against the reference on
tumour-sized masks. Time model: seconds = t_review + k * (length of the error boundary in mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class TimeModel:
    t_review: float = 8.0  # seconds to look at a slice
    k_per_mm: float = 0.15  # seconds per mm of erroneous boundary redrawn

    def seconds(self, pred_slice: np.ndarray, corrected_slice: np.ndarray, pixel_mm: float) -> float:
        error = pred_slice ^ corrected_slice
        boundary = error & ~ndimage.binary_erosion(error)
        return self.t_review + self.k_per_mm * float(boundary.sum()) * pixel_mm


class PerfectExpert:
    name = "perfect"

    def correct(self, truth: np.ndarray, axis: int, seed: int = 0) -> np.ndarray:
        return truth.copy()


class NoisyExpert:
    name = "noisy"

    def __init__(self, band: int = 1, flip_fraction: float = 0.5, smoothness: float = 1.5):
        self.band, self.flip_fraction, self.smoothness = band, flip_fraction, smoothness

    def correct(self, truth: np.ndarray, axis: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        moved = np.moveaxis(truth, axis, 0)
        out = np.empty_like(moved)
        for s, sl in enumerate(moved):
            if not sl.any():
                out[s] = sl
                continue
            band = ndimage.binary_dilation(sl, iterations=self.band) & ~ndimage.binary_erosion(sl, iterations=self.band)
            field = ndimage.gaussian_filter(rng.standard_normal(sl.shape), self.smoothness)
            flip = band & (field > np.quantile(field[band], 1 - self.flip_fraction))
            out[s] = sl ^ flip
        return np.moveaxis(out, 0, axis)


EXPERTS = {"perfect": PerfectExpert, "noisy": NoisyExpert}
