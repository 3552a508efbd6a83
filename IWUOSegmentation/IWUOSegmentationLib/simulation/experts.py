"""Simulated experts: what a visited slice looks like after the expert, and how long it took.

Three experts, one interface `corrected(pred, truth, axis, spacing_xyz, seed) -> mask`:

* ``perfect``: the slice becomes the reference (an upper bound).
* ``noisy`` = :class:`CorrectingExpert` (the default imperfect expert): the expert's *belief* is
  the reference with inter-rater boundary variability; on a visited slice they edit only the
  error regions they would notice (connected components of prediction XOR belief that are large
  enough and reach beyond the inter-rater band) and leave the rest of the prediction
  untouched, as clinicians correct rather than redraw.
* ``redrawing`` = :class:`RedrawingExpert` (the earlier "noisy" expert, kept for comparison):
  redraws every visited slice from the reference with boundary noise, which also damages slices
  the model had right.

The time an edit takes is ranking/correction_time.py's model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..ranking.correction_time import in_plane_spacing


@dataclass
class ExpertTolerance:
    """What the correcting expert believes and what they bother to fix.

    boundary_sd_mm / correlation_mm / max_displacement_mm: the believed boundary is the reference's
    boundary moved along its normal by a smooth random displacement (Gaussian field, this standard
    deviation and correlation length, clipped). Calibrated so that a full redraw agrees with the
    reference like two BraTS raters do: Menze et al. 2015 (IEEE TMI 34:1993-2024) report
    inter-rater Dice of 74-85 % over the tumour sub-regions (tested on the demo phantoms).
    distance_tolerance_mm: an error region is only edited if it reaches further than this from
    the true boundary, beyond the inter-rater band: disagreement within it is not an error to a
    rater (the tolerance idea of the surface Dice, Nikolov et al. 2021, J Med Internet Res 23:e26151);
    it equals max_displacement_mm, so the reference itself is left exactly as it is.
    min_area_mm2: error islands smaller than this are not noticed at normal zoom (assumption:
    about a 4 x 4 mm speck).
    """

    boundary_sd_mm: float = 2.0
    correlation_mm: float = 8.0
    max_displacement_mm: float = 4.0
    distance_tolerance_mm: float = 4.0
    min_area_mm2: float = 16.0


def _signed_distance(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """mm from the boundary (between pixel centres): negative inside, positive outside."""
    half = 0.5 * float(np.sqrt(sampling[0] * sampling[1]))
    inside = ndimage.distance_transform_edt(mask, sampling=sampling) - half
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling) - half
    return np.where(mask, -inside, outside)


def believed_slice(truth_slice: np.ndarray, rng: np.random.Generator, sampling: tuple[float, float],
                   tol: ExpertTolerance) -> np.ndarray:
    """The reference slice as another rater would draw it: boundary moved by a smooth random field."""
    if not truth_slice.any():
        return truth_slice.copy()
    sigma_px = (tol.correlation_mm / sampling[0], tol.correlation_mm / sampling[1])
    field = ndimage.gaussian_filter(rng.standard_normal(truth_slice.shape), sigma_px)
    # Filtered unit white noise has standard deviation 1 / sqrt(4 pi sigma_y sigma_x) (2-D, in pixels).
    field *= tol.boundary_sd_mm * np.sqrt(4.0 * np.pi * sigma_px[0] * sigma_px[1])
    field = np.clip(field, -tol.max_displacement_mm, tol.max_displacement_mm)
    return _signed_distance(truth_slice, sampling) < field


def noticed_edit(pred_slice: np.ndarray, belief_slice: np.ndarray, truth_slice: np.ndarray,
                 sampling: tuple[float, float], tol: ExpertTolerance) -> np.ndarray:
    """The prediction with every error region the expert would notice set to their belief.

    The expert compares the prediction with their belief; a region where they differ is noticed
    when it is large enough and reaches beyond the inter-rater band, i.e. further than the
    distance tolerance from the true boundary (disagreement inside that band is a matter of
    taste between raters, not an error). Everything else stays as predicted.
    """
    error = pred_slice ^ belief_slice
    if not error.any():
        return pred_slice.copy()
    labels, n = ndimage.label(error, structure=np.ones((3, 3), bool))
    index = np.arange(1, n + 1)
    area_mm2 = ndimage.sum_labels(np.ones(error.shape), labels, index) * sampling[0] * sampling[1]
    if truth_slice.any():
        depth = np.abs(_signed_distance(truth_slice, sampling))
    else:
        depth = np.full(error.shape, np.inf)
    reach = np.asarray(ndimage.maximum(depth, labels, index), float)
    keep = index[(area_mm2 >= tol.min_area_mm2) & (reach > tol.distance_tolerance_mm)]
    out = pred_slice.copy()
    fix = np.isin(labels, keep)
    out[fix] = belief_slice[fix]
    return out


class PerfectExpert:
    name = "perfect"

    def correct(self, truth: np.ndarray, axis: int, seed: int = 0) -> np.ndarray:
        return truth.copy()

    def corrected(self, pred: np.ndarray, truth: np.ndarray, axis: int, spacing_xyz=(1.0, 1.0, 1.0),
                  seed: int = 0) -> np.ndarray:
        return truth.copy()


class RedrawingExpert:
    """Redraws the whole visited slice from the reference with boundary noise (the earlier "noisy")."""

    name = "redrawing"

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

    def corrected(self, pred: np.ndarray, truth: np.ndarray, axis: int, spacing_xyz=(1.0, 1.0, 1.0),
                  seed: int = 0) -> np.ndarray:
        return self.correct(truth, axis, seed)


class CorrectingExpert:
    """Edits only the error regions they would notice, against their own (inter-rater-like) belief."""

    name = "noisy"

    def __init__(self, tolerance: ExpertTolerance | None = None):
        self.tolerance = tolerance or ExpertTolerance()

    def belief(self, truth: np.ndarray, axis: int, spacing_xyz=(1.0, 1.0, 1.0), seed: int = 0) -> np.ndarray:
        """The expert's full redraw of every slice (what they would draw from scratch)."""
        rng = np.random.default_rng(seed)
        sampling = in_plane_spacing(spacing_xyz, axis)
        moved = np.moveaxis(truth, axis, 0)
        out = np.stack([believed_slice(sl, rng, sampling, self.tolerance) for sl in moved])
        return np.moveaxis(out, 0, axis)

    def corrected(self, pred: np.ndarray, truth: np.ndarray, axis: int, spacing_xyz=(1.0, 1.0, 1.0),
                  seed: int = 0) -> np.ndarray:
        """Every slice as it would look after a visit (computed once per slice, replayed by order)."""
        sampling = in_plane_spacing(spacing_xyz, axis)
        belief = np.moveaxis(self.belief(truth, axis, spacing_xyz, seed), axis, 0)
        p = np.moveaxis(pred, axis, 0)
        t = np.moveaxis(truth, axis, 0)
        out = np.stack([noticed_edit(ps, bs, ts, sampling, self.tolerance) if (ps.any() or bs.any()) else ps.copy()
                        for ps, bs, ts in zip(p, belief, t)])
        return np.moveaxis(out, 0, axis)


#: Backwards-compatible name of the earlier redrawing expert.
NoisyExpert = RedrawingExpert
EXPERTS = {"perfect": PerfectExpert, "noisy": CorrectingExpert, "correcting": CorrectingExpert,
           "redrawing": RedrawingExpert}
