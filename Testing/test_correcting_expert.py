"""The correcting simulated expert: one belief per case (a label map), leaves what is right, fixes what a rater
would see, keeps the regions nested, costs time by path, and is a reproducible random variable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from IWUOSegmentationLib.ranking.correction_time import TimeModel, added_path_length, in_plane_spacing
from IWUOSegmentationLib.ranking.slice_counts import dice
from IWUOSegmentationLib.ranking.slice_scores import BRATS_REGIONS, region_mask
from IWUOSegmentationLib.simulation.experts import (
    CorrectingExpert,
    ExpertCase,
    ExpertTolerance,
    PerfectExpert,
    RedrawingExpert,
    corrected_regions,
    draw_seed,
)


def _label(folder):
    image = sitk.ReadImage(str(folder / "label.nii.gz"))
    return sitk.GetArrayFromImage(image).astype(np.int64), image.GetSpacing()


def _brats_case(prediction: np.ndarray, reference: np.ndarray, spacing) -> ExpertCase:
    """WT/TC/ET of a BraTS 2013 label map as prediction and reference."""
    return ExpertCase({r: region_mask(prediction, v) for r, v in BRATS_REGIONS.items()}, reference, BRATS_REGIONS, 0,
                      spacing)


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _damaged(label: np.ndarray, shift: int) -> np.ndarray:
    """A prediction with the errors a model makes: a shifted slab, ET called core, an oedema island, a missed lobe."""
    pred = label.copy()
    z = np.flatnonzero(label.reshape(len(label), -1).any(1))
    slab = slice(z[len(z) // 3], z[len(z) // 2])
    pred[slab] = np.roll(label[slab], 3 + shift, axis=2)  # a 6 mm shift or more
    cz, cy, cx = (int(np.mean(a)) for a in np.nonzero(label))
    zz, yy, xx = np.indices(label.shape)
    pred[(pred == 4) & (xx > cx) & (zz % 3 == 0)] = 1  # enhancing rim called necrosis on one side
    pred[cz - 2:cz + 3, 5:12, 5:12] = 2  # a false-positive oedema island far from the tumour
    pred[(label > 0) & (yy < cy - 6) & (zz % 2 == 0)] = 0  # a missed part on every other slice
    return pred


def test_the_reference_itself_is_left_exactly_as_it_is(phantom_cases):
    label, spacing = _label(phantom_cases / "phantom_0011")
    case = _brats_case(label, label, spacing)
    expert = CorrectingExpert()
    for d in range(3):
        draw = expert.draw(case, draw_seed("phantom_0011", d))
        assert not expert.outcome(case, draw).edited.any(), d
        corrected = corrected_regions(expert, case, draw_seed("phantom_0011", d))
        assert all(np.array_equal(corrected[r], region_mask(label, v)) for r, v in BRATS_REGIONS.items())
        # ...while the belief itself differs from the reference (a real disagreement was ignored).
        assert sum(int((p.belief["WT"] ^ case.truth["WT"][s]).sum()) for s, p in draw.slices.items()) > 50
    # With no tolerance the same expert would "correct" the reference towards its belief.
    strict = ExpertTolerance(distance_tolerance_mm=0.0, min_area_mm2=0.0)
    assert expert.outcome(case, expert.draw(case, draw_seed("phantom_0011", 0)), strict).edited.any()


def _one_slice_case(pred: np.ndarray, truth: np.ndarray) -> ExpertCase:
    """A single-slice, single-region case at 1 mm (label 1 = the region)."""
    return ExpertCase({"A": pred[None]}, truth[None].astype(np.int64), {"A": (1,)}, 0, (1.0, 1.0, 1.0))


def test_a_slice_without_visible_error_is_untouched_and_costs_only_the_look():
    truth = _disc((64, 64), (32, 32), 12)
    shifted = np.roll(truth, 1, axis=1)  # a 1 mm boundary shift: inside the inter-rater band
    expert, model = CorrectingExpert(), TimeModel()
    for d in range(5):
        case = _one_slice_case(shifted, truth)
        outcome = expert.outcome(case, expert.draw(case, (0, d)))
        assert not outcome.edited.any()
        assert outcome.seconds(model)[0] == model.look_seconds
    # A far false-positive speck too small to see (3 x 3 mm < 16 mm2) stays; a 5 x 5 mm one is erased.
    for side, erased in ((3, False), (5, True)):
        speck = np.zeros_like(truth)
        speck[4:4 + side, 4:4 + side] = True
        case = _one_slice_case(truth | speck, truth)
        for d in range(3):
            assert corrected_regions(expert, case, (0, d))["A"][0][speck].any() != erased, (side, d)
    # A missed lobe well outside the band is noticed and filled, and costs path length.
    lobe = _disc((64, 64), (32, 52), 10)
    truth2 = truth | lobe
    tol = ExpertTolerance()
    # Lobe pixels deeper inside the reference than any belief displacement: every belief has them.
    core = lobe & ~truth & (ndimage.distance_transform_edt(truth2) > tol.max_displacement_mm + 1)
    assert core.sum() > 30
    for d in range(5):
        case = _one_slice_case(truth, truth2)
        draw = expert.draw(case, (0, d))
        fixed = corrected_regions(expert, case, (0, d))["A"][0]
        assert fixed[core].all()
        assert not fixed[~truth & ~draw.slices[0].belief["A"]].any()  # nothing drawn outside prediction and belief
        assert expert.outcome(case, draw).seconds(model)[0] > model.look_seconds + model.seconds_per_mm * 10
    # An expert without inter-rater variability restores the reference exactly.
    exact = CorrectingExpert(ExpertTolerance(boundary_sd_mm=0.0))
    assert np.array_equal(corrected_regions(exact, _one_slice_case(truth, truth2), (0, 0))["A"][0], truth2)


def test_corrected_regions_nest_on_every_slice_the_expert_corrected(phantom_cases):
    """One belief per case (a label map) and one edit per piece for all regions: ET within TC within WT wherever the
    expert edited, for every draw; with independent beliefs per region they would not nest."""
    label, spacing = _label(phantom_cases / "phantom_0012")
    pred = _damaged(label, 0)
    pred_regions = {r: region_mask(pred, v) for r, v in BRATS_REGIONS.items()}
    assert np.all(pred_regions["ET"] <= pred_regions["TC"]) and np.all(pred_regions["TC"] <= pred_regions["WT"])
    case = _brats_case(pred, label, spacing)
    edited_by_region = {r: 0 for r in BRATS_REGIONS}
    for expert in (CorrectingExpert(), RedrawingExpert()):
        for d in range(4):
            slices = expert.corrected_slices(case, expert.draw(case, draw_seed("nest", d)))
            assert len(slices) > 5
            for s, masks in slices.items():
                assert np.all(masks["ET"] <= masks["TC"]) and np.all(masks["TC"] <= masks["WT"]), (expert.name, d, s)
                for r in BRATS_REGIONS:
                    edited_by_region[r] += int((masks[r] ^ case.pred[r][s]).sum())
    assert all(v > 100 for v in edited_by_region.values()), edited_by_region  # every region was edited somewhere


def test_expert_draws_are_reproducible_per_seed(phantom_cases):
    label, spacing = _label(phantom_cases / "phantom_0013")
    case = _brats_case(_damaged(label, 1), label, spacing)
    expert = CorrectingExpert()

    def outcome(seed):
        o = expert.outcome(case, expert.draw(case, seed))
        return np.stack([np.concatenate([o.counts[r].tp_fixed, o.counts[r].fp_fixed, o.path_mm[r]]) for r in case.names])

    first, again = outcome(draw_seed("phantom_0013", 0)), outcome(draw_seed("phantom_0013", 0))
    assert np.array_equal(first, again)
    assert np.array_equal(first, outcome(draw_seed("phantom_0013", 0)))
    others = [outcome(draw_seed("phantom_0013", d)) for d in (1, 2)] + [outcome(draw_seed("phantom_0012", 0))]
    assert all(not np.array_equal(first, o) for o in others)
    assert draw_seed("phantom_0013", 0) == draw_seed("phantom_0013", 0) != draw_seed("phantom_0013", 1)


def test_added_path_length_counts_new_contour_only():
    a = _disc((64, 64), (32, 32), 10)
    assert added_path_length(a, a, 1.0) == 0.0
    erased = np.zeros_like(a)
    assert added_path_length(a, erased, 1.0) == 0.0  # erasing an island adds no contour
    grown = _disc((64, 64), (32, 32), 14)
    perimeter = (grown & ~np.pad(grown, 1)[2:, 1:-1] | grown & ~np.pad(grown, 1)[:-2, 1:-1]
                 | grown & ~np.pad(grown, 1)[1:-1, 2:] | grown & ~np.pad(grown, 1)[1:-1, :-2]).sum()
    assert added_path_length(a, grown, 2.0) == pytest.approx(2.0 * perimeter, rel=0.05)


def test_full_redraw_agrees_with_the_reference_like_brats_raters(phantom_cases):
    """Menze et al. 2015 (IEEE TMI): inter-rater Dice 74-85 % over the BraTS sub-regions."""
    expert = CorrectingExpert()
    per_region = {r: [] for r in BRATS_REGIONS}
    for folder in sorted(p for p in phantom_cases.iterdir() if p.is_dir()):
        label, spacing = _label(folder)
        case = _brats_case(label, label, spacing)
        for s, pieces in expert.draw(case, draw_seed(folder.name, 0)).slices.items():
            for region in BRATS_REGIONS:
                b, t = pieces.belief[region], case.truth[region][s]
                if t.sum() >= 25:
                    per_region[region].append(float(dice((b & t).sum(), (b & ~t).sum(), (~b & t).sum())))
    medians = {r: float(np.median(v)) for r, v in per_region.items()}
    assert 0.74 <= np.mean(list(medians.values())) <= 0.85, medians
    assert all(0.65 <= m <= 0.95 for m in medians.values()), medians
    assert medians["WT"] > medians["ET"]  # thin enhancing rims are the hardest to agree on, as in BraTS


def test_in_plane_spacing_follows_the_slice_axis():
    assert in_plane_spacing((1.0, 2.0, 5.0), 0) == (2.0, 1.0)  # z-slices: (y, x)
    assert in_plane_spacing((1.0, 2.0, 5.0), 2) == (5.0, 2.0)  # x-slices: (z, y)


@pytest.mark.slow
def test_full_budget_never_below_start_on_the_demo_phantoms(tmp_path):
    """The demo's phantoms (seeds 100-102): correcting every slice never lowers any region's Dice by more than 0.005
    (mean over the expert draws)."""
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.cli.demo import DEMO_SEEDS_START
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.simulation.evaluate_folders import STRATEGY_NAMES

    write_phantoms(tmp_path / "cases", 3, seed=DEMO_SEEDS_START, layout="cases")
    out = tmp_path / "out"
    assert main(["--progress", "none", "evaluate", "--cases", str(tmp_path / "cases"), "--out", str(out),
                 "--members", "folds", "--disable-tta", "--random-seeds", "3", "--expert-draws", "3", "--device", "cpu",
                 "--expert", "noisy,perfect", "--strategies", ",".join(STRATEGY_NAMES)]) == 0
    checked = 0
    for path in sorted((out / "cases").glob("*/evaluation.json")):
        record = json.loads(path.read_text())
        for row in record["rows"]:
            if row["expert"] == "noisy":
                assert row["dice_after_all"] >= row["dice_before"] - 0.005, row
                checked += 1
        perfect = [r for r in record["rows"] if r["expert"] == "perfect"]
        assert all(r["dice_after_all"] == 1.0 for r in perfect)
    assert checked == 3 * 4 * len(STRATEGY_NAMES)
    report = (out / "report.md").read_text()
    assert "Slice-level failure detection" in report and "auroc" in report
    assert (out / "dice_vs_seconds_noisy.png").stat().st_size > 10000
    # Replay only: re-runs from the saved analyses, same rows.
    first = json.loads((out / "cases" / "phantom_0100" / "evaluation.json").read_text())
    assert main(["--progress", "none", "evaluate", "--cases", str(tmp_path / "cases"), "--out", str(out),
                 "--replay-only", "--random-seeds", "3", "--expert-draws", "3", "--expert", "noisy,perfect"]) == 0
    again = json.loads((out / "cases" / "phantom_0100" / "evaluation.json").read_text())
    assert again["rows"] == first["rows"]


def test_perfect_expert_is_the_reference():
    truth = np.zeros((3, 8, 8), np.int64)
    truth[1, 2:5, 2:5] = 1
    case = ExpertCase({"A": truth == 0}, truth, {"A": (1,)}, 0, (1.0, 1.0, 1.0))
    assert np.array_equal(corrected_regions(PerfectExpert(), case)["A"], truth == 1)
