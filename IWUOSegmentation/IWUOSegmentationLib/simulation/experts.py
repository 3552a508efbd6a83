"""Simulated experts: what a visited slice becomes, for every evaluated region at once, and its added path.

The expert is a random variable: each draw is one rater. Three experts share one interface
(`draw(case, seed)`, then `outcome(case, draw)`):

* ``perfect``: the slice becomes the reference (an upper bound; one draw is all there is).
* ``noisy`` = :class:`CorrectingExpert` (the default): the expert *believes* a label map, the
  reference's labels as another rater would draw them (warped by a smooth random in-plane
  displacement: inter-rater boundary variability). One belief per case for all regions, so the
  regions derived from it nest as the reference's do (ET within TC within WT). On a visited slice
  they edit only the error pieces they notice: connected pieces of the slice where the
  prediction's regions differ from the believed ones, large enough to see and reaching beyond
  the inter-rater band of the true boundary, and relabel them as they believe. One edit relabels
  every region there at once (as an edit of the label map does), so corrected regions nest too.
  Everything else stays as predicted.
* ``redrawing``: redraws every visited slice as they believe it (the same belief, all of it),
  which also damages slices the model had right (kept for comparison).

What the correcting expert decides with the truth: only whether a piece they disagree with
reaches beyond the inter-rater band of the *true* boundary. A real rater knows the anatomy; a
simulated one only has a noisy copy of the reference, and without this rule it would "correct"
a perfect prediction towards its own taste. With it, the reference itself is left exactly as it
is (tested) while every piece the expert edits is relabelled by their belief, not by the truth.

Work is shared across the sensitivity grid: a draw (belief and the pieces of disagreement, with
their areas and reach) does not depend on what the expert bothers to fix (distance tolerance,
minimum area) nor on the time constants; `outcome` applies a tolerance to a draw.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..ranking.correction_time import added_path_length, in_plane_spacing
from ..ranking.noticed_errors import PIECE_CONNECTIVITY, NoticeModel, signed_distance_mm
from ..ranking.slice_counts import SliceCounts


@dataclass(frozen=True)
class ExpertTolerance:
    """What the correcting expert believes and what they bother to fix.

    boundary_sd_mm / correlation_mm / max_displacement_mm: the believed label map is the reference's
    warped by a smooth random in-plane displacement (each component a Gaussian field of this
    standard deviation and correlation length, its length clipped). Calibrated so that a full redraw
    agrees with the reference like two BraTS raters do: Menze et al. 2015 (IEEE TMI 34:1993-2024)
    report inter-rater Dice of 74-85 % over the tumour sub-regions (tested on phantoms).
    distance_tolerance_mm and min_area_mm2: what they notice (ranking/noticed_errors.NoticeModel, the
    same defaults the noticed-gain ranking assumes); the tolerance equals max_displacement_mm, so the
    reference itself is left exactly as it is.
    """

    boundary_sd_mm: float = 2.0
    correlation_mm: float = 8.0
    max_displacement_mm: float = NoticeModel.distance_tolerance_mm
    distance_tolerance_mm: float = NoticeModel.distance_tolerance_mm
    min_area_mm2: float = NoticeModel.min_area_mm2


def draw_seed(case: str, draw: int) -> tuple[int, int]:
    """The seed of expert draw `draw` of a case: reproducible, different for every case and draw."""
    return zlib.crc32(case.encode()), int(draw)


def _slice_rng(seed, index: int) -> np.random.Generator:
    return np.random.default_rng([*np.atleast_1d(seed).tolist(), int(index)])


def displacement_limit_mm(tol: ExpertTolerance, sampling: tuple[float, float]) -> float:
    """Longest displacement: nearest-neighbour sampling lands up to half a pixel diagonal further, so the
    limit leaves room for it; every relabelled pixel then lies within max_displacement_mm of a boundary."""
    slack = 0.5 * float(np.hypot(*sampling)) - 0.5 * float(np.sqrt(sampling[0] * sampling[1]))
    return max(tol.max_displacement_mm - slack, 0.0)


def believed_label_slice(labels: np.ndarray, rng: np.random.Generator, sampling: tuple[float, float],
                         tol: ExpertTolerance) -> np.ndarray:
    """A reference label slice as another rater would draw it: warped by a smooth random displacement field."""
    if not labels.any() or tol.boundary_sd_mm <= 0:
        return labels.copy()
    sigma_px = (tol.correlation_mm / sampling[0], tol.correlation_mm / sampling[1])
    # Filtered unit white noise has standard deviation 1 / sqrt(4 pi sigma_y sigma_x) (2-D, in pixels).
    gain = tol.boundary_sd_mm * np.sqrt(4.0 * np.pi * sigma_px[0] * sigma_px[1])
    u = np.stack([ndimage.gaussian_filter(rng.standard_normal(labels.shape), sigma_px) * gain for _ in range(2)])
    length = np.sqrt((u ** 2).sum(0))
    u *= np.minimum(1.0, displacement_limit_mm(tol, sampling) / np.maximum(length, 1e-12))
    grid = np.mgrid[:labels.shape[0], :labels.shape[1]].astype(float)
    coords = grid + u / np.asarray(sampling, float)[:, None, None]
    return ndimage.map_coordinates(labels, coords, order=0, mode="nearest")


class ExpertCase:
    """One case as the experts see it, prepared once: the predicted and reference masks of every region along
    the slice axis (slices first), the reference's labels, and each region's distance from its true boundary."""

    def __init__(self, predictions: Mapping[str, np.ndarray], reference: np.ndarray,
                 reference_values: Mapping[str, tuple[int, ...]], axis: int, spacing_xyz):
        self.names = list(predictions)
        self.axis = axis
        self.sampling = in_plane_spacing(spacing_xyz, axis)
        self.pixel_mm = float(np.sqrt(np.prod(self.sampling)))
        self.reference = np.moveaxis(reference, axis, 0)
        self.values = {r: tuple(reference_values[r]) for r in self.names}
        self.pred = {r: np.moveaxis(predictions[r], axis, 0) for r in self.names}
        self.truth = {r: np.isin(self.reference, self.values[r]) for r in self.names}
        self.n_slices = self.reference.shape[0]
        other = tuple(range(1, self.reference.ndim))
        self.counts_before = {r: ((self.pred[r] & self.truth[r]).sum(other, dtype=np.int64),
                                  (self.pred[r] & ~self.truth[r]).sum(other, dtype=np.int64),
                                  (~self.pred[r] & self.truth[r]).sum(other, dtype=np.int64)) for r in self.names}
        self.labelled = self.reference.reshape(self.n_slices, -1).any(1)
        self.predicted = np.any([self.pred[r].reshape(self.n_slices, -1).any(1) for r in self.names], axis=0)
        self._depth: dict[tuple[str, int], np.ndarray] = {}

    def depth(self, region: str, s: int) -> np.ndarray:
        """mm from the true boundary of `region` on slice s (infinite where the region is absent)."""
        key = (region, s)
        if key not in self._depth:
            truth = self.truth[region][s]
            self._depth[key] = (np.abs(signed_distance_mm(truth, self.sampling)).astype(np.float32) if truth.any()
                                else np.full(truth.shape, np.inf, np.float32))
        return self._depth[key]

    def outcome(self, corrected: Mapping[int, dict[str, np.ndarray]]) -> ExpertOutcome:
        """Counts after a visit and added path length of every slice, given the changed slices' corrected masks
        (slice -> region -> mask); the other slices stay as predicted."""
        counts, paths = {}, {}
        for r in self.names:
            tp, fp, fn = (c.copy() for c in self.counts_before[r])
            path = np.zeros(self.n_slices)
            for s, masks in corrected.items():
                c, t = masks[r], self.truth[r][s]
                tp[s], fp[s], fn[s] = (c & t).sum(), (c & ~t).sum(), (~c & t).sum()
                path[s] = added_path_length(self.pred[r][s], c, self.pixel_mm)
            before = self.counts_before[r]
            counts[r] = SliceCounts(before[0], before[1], before[2], tp, fp, fn)
            paths[r] = path
        edited = np.zeros(self.n_slices, bool)
        for s, masks in corrected.items():
            edited[s] = any((masks[r] ^ self.pred[r][s]).any() for r in self.names)
        return ExpertOutcome(counts, paths, edited)


@dataclass
class ExpertOutcome:
    """What visiting each slice gives: per region the counts after the visit and the added path length (mm)."""

    counts: dict[str, SliceCounts]
    path_mm: dict[str, np.ndarray]
    edited: np.ndarray  # slices the expert changed (any region)

    def seconds(self, time_model) -> np.ndarray:
        """Seconds of every slice: one look plus the path length of all its regions."""
        return time_model.look_seconds + time_model.seconds_per_mm * np.sum(list(self.path_mm.values()), axis=0)

    def seconds_of(self, region: str, time_model) -> np.ndarray:
        """Seconds of every slice when only `region` is corrected there (per-region rankings)."""
        return time_model.look_seconds + time_model.seconds_per_mm * self.path_mm[region]


@dataclass
class SlicePieces:
    """One slice of a draw: the believed regions and the pieces where the prediction differs from them."""

    belief: dict[str, np.ndarray]
    labels: np.ndarray
    area_mm2: np.ndarray
    reach_mm: np.ndarray


@dataclass
class ExpertDraw:
    """One rater: their belief of every slice that has tumour or prediction, with its pieces of disagreement."""

    seed: tuple
    slices: dict[int, SlicePieces] = field(default_factory=dict)


class Expert:
    """What every expert offers: draws (raters) and, for a draw, the corrected slices and their outcome."""

    name = ""
    random = False

    def draw(self, case: ExpertCase, seed=0) -> ExpertDraw:
        return ExpertDraw(seed=tuple(np.atleast_1d(seed).tolist()))

    def corrected_slices(self, case: ExpertCase, draw: ExpertDraw, tolerance: ExpertTolerance | None = None) -> dict:
        """slice -> region -> corrected mask, for the slices the expert changes (the others stay as predicted)."""
        raise NotImplementedError

    def outcome(self, case: ExpertCase, draw: ExpertDraw, tolerance: ExpertTolerance | None = None) -> ExpertOutcome:
        return case.outcome(self.corrected_slices(case, draw, tolerance))


def disagreement_pieces(case: ExpertCase, s: int, belief: dict[str, np.ndarray]) -> SlicePieces:
    """Where slice s of the prediction differs from the belief, in pieces an expert would relabel in one edit:
    connected pixels that the prediction gives one label and the belief another, the same two labels throughout
    (labels as the set of evaluated regions a pixel is in, so any model's regions work). A piece reaches as far
    from the true boundary as its farthest pixel, measured for the regions the two labels disagree on."""
    predicted = np.zeros(case.reference.shape[1:], np.int64)
    believed = np.zeros_like(predicted)
    reach = np.full(predicted.shape, -np.inf)
    for i, r in enumerate(case.names):
        predicted |= case.pred[r][s].astype(np.int64) << i
        believed |= belief[r].astype(np.int64) << i
        wrong = case.pred[r][s] ^ belief[r]
        if wrong.any():
            reach = np.where(wrong, np.maximum(reach, case.depth(r, s)), reach)
    pair = np.where(predicted != believed, (predicted << len(case.names)) | believed, -1)
    pieces = np.zeros(predicted.shape, np.int64)
    n = 0
    for code in np.unique(pair[pair >= 0]):
        labels, k = ndimage.label(pair == code, structure=PIECE_CONNECTIVITY)
        pieces[labels > 0] = labels[labels > 0] + n
        n += k
    area = np.bincount(pieces.ravel(), minlength=n + 1)[1:] * float(np.prod(case.sampling))
    far = np.asarray(ndimage.maximum(reach, pieces, np.arange(1, n + 1)), float) if n else np.zeros(0)
    return SlicePieces(belief, pieces, area, far)


class PerfectExpert(Expert):
    name = "perfect"

    def corrected_slices(self, case: ExpertCase, draw: ExpertDraw, tolerance: ExpertTolerance | None = None) -> dict:
        return {int(s): {r: case.truth[r][s] for r in case.names} for s in np.flatnonzero(case.labelled | case.predicted)}


class CorrectingExpert(Expert):
    """Edits only the error pieces they would notice, relabelling them as they believe (one belief per case)."""

    name = "noisy"
    random = True

    def __init__(self, tolerance: ExpertTolerance | None = None):
        self.tolerance = tolerance or ExpertTolerance()

    def belief_labels(self, case: ExpertCase, seed, s: int) -> np.ndarray:
        """The believed label slice s of draw `seed` (reproducible: its own random stream per slice)."""
        return believed_label_slice(case.reference[s], _slice_rng(seed, s), case.sampling, self.tolerance)

    def draw(self, case: ExpertCase, seed=0) -> ExpertDraw:
        draw = ExpertDraw(seed=tuple(np.atleast_1d(seed).tolist()))
        for s in np.flatnonzero(case.labelled | case.predicted):
            labels = self.belief_labels(case, seed, int(s))
            belief = {r: np.isin(labels, case.values[r]) for r in case.names}
            draw.slices[int(s)] = disagreement_pieces(case, int(s), belief)
        return draw

    def edited_pieces(self, pieces: SlicePieces, tolerance: ExpertTolerance) -> np.ndarray:
        """Pixels of one slice the expert relabels: the pieces they notice."""
        keep = (pieces.area_mm2 >= tolerance.min_area_mm2) & (pieces.reach_mm > tolerance.distance_tolerance_mm)
        return np.concatenate([[False], keep])[pieces.labels]

    def corrected_slices(self, case: ExpertCase, draw: ExpertDraw, tolerance: ExpertTolerance | None = None) -> dict:
        tolerance = tolerance or self.tolerance
        corrected = {}
        for s, pieces in draw.slices.items():
            edit = self.edited_pieces(pieces, tolerance)
            if edit.any():
                corrected[s] = {r: np.where(edit, pieces.belief[r], case.pred[r][s]) for r in case.names}
        return corrected


class RedrawingExpert(CorrectingExpert):
    """Redraws every visited slice as they believe it (the same belief as the correcting expert, all of it)."""

    name = "redrawing"

    def corrected_slices(self, case: ExpertCase, draw: ExpertDraw, tolerance: ExpertTolerance | None = None) -> dict:
        return {s: dict(p.belief) for s, p in draw.slices.items()}

    def correct(self, truth: np.ndarray, axis: int, seed=0, spacing_xyz=(1.0, 1.0, 1.0)) -> np.ndarray:
        """One region's mask redrawn as the rater believes it, every slice (for a single mask, e.g. the self-test)."""
        case = ExpertCase({"region": truth}, truth.astype(np.int64), {"region": (1,)}, axis, spacing_xyz)
        return corrected_regions(self, case, seed)["region"]


#: The earlier name of the redrawing expert (the module's self-test replays it through the Segment Editor).
NoisyExpert = RedrawingExpert
EXPERTS = {"perfect": PerfectExpert, "noisy": CorrectingExpert, "correcting": CorrectingExpert,
           "redrawing": RedrawingExpert}


def corrected_regions(expert, case: ExpertCase, seed=0, tolerance: ExpertTolerance | None = None) -> dict[str, np.ndarray]:
    """Every region as it would look after visiting every slice (volumes in the case's array order): for tests,
    benchmarks and the brute-force replay; the evaluation works from the outcome's counts."""
    out = {r: case.pred[r].copy() for r in case.names}
    for s, masks in expert.corrected_slices(case, expert.draw(case, seed), tolerance).items():
        for r in case.names:
            out[r][s] = masks[r]
    return {r: np.moveaxis(v, 0, case.axis) for r, v in out.items()}
