"""The correcting simulated expert: leaves what is right, fixes what a rater would see, costs time by path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.ranking.correction_time import TimeModel, added_path_length, in_plane_spacing
from IWUOSegmentationLib.ranking.slice_counts import dice
from IWUOSegmentationLib.ranking.slice_scores import BRATS_REGIONS, region_mask
from IWUOSegmentationLib.simulation.experts import CorrectingExpert, ExpertTolerance, PerfectExpert, noticed_edit


def _label(folder):
    image = sitk.ReadImage(str(folder / "label.nii.gz"))
    return sitk.GetArrayFromImage(image), image.GetSpacing()


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_the_reference_itself_is_left_exactly_as_it_is(phantom_cases):
    label, spacing = _label(phantom_cases / "phantom_0011")
    expert = CorrectingExpert()
    for region, values in BRATS_REGIONS.items():
        truth = region_mask(label, values)
        corrected = expert.corrected(truth, truth, 0, spacing, seed=3)
        assert np.array_equal(corrected, truth), region
        # ...while the belief itself differs from the reference (a real disagreement was ignored).
        assert (expert.belief(truth, 0, spacing, seed=3) ^ truth).sum() > 50
    # With no tolerance the same expert would "correct" the reference towards its belief.
    strict = CorrectingExpert(ExpertTolerance(distance_tolerance_mm=0.0, min_area_mm2=0.0))
    truth = region_mask(label, BRATS_REGIONS["WT"])
    assert not np.array_equal(strict.corrected(truth, truth, 0, spacing, seed=3), truth)


def test_a_slice_without_visible_error_is_untouched_and_costs_only_the_look():
    truth = _disc((64, 64), (32, 32), 12)
    shifted = np.roll(truth, 1, axis=1)  # a 1 mm boundary shift: inside the inter-rater band
    sampling = (1.0, 1.0)
    rng = np.random.default_rng(0)
    from IWUOSegmentationLib.simulation.experts import believed_slice

    tol = ExpertTolerance()
    belief = believed_slice(truth, rng, sampling, tol)
    out = noticed_edit(shifted, belief, truth, sampling, tol)
    assert np.array_equal(out, shifted)
    model = TimeModel()
    assert model.seconds(shifted, out, 1.0) == model.look_seconds
    # A missed lobe well outside the band is noticed and filled, and costs path length.
    lobe = _disc((64, 64), (32, 52), 10)
    truth2 = truth | lobe
    from scipy import ndimage

    # Lobe pixels deeper inside the reference than any belief displacement: every belief has them.
    core = lobe & ~truth & (ndimage.distance_transform_edt(truth2) > tol.max_displacement_mm + 1)
    assert core.sum() > 30
    for seed in range(5):
        belief2 = believed_slice(truth2, np.random.default_rng(seed), sampling, tol)
        fixed = noticed_edit(truth, belief2, truth2, sampling, tol)
        assert fixed[core].all()
        assert not fixed[~truth & ~belief2].any()  # nothing drawn outside both the prediction and the belief
        assert model.seconds(truth, fixed, 1.0) > model.look_seconds + model.seconds_per_mm * 10
    # An expert without inter-rater variability restores the reference exactly.
    exact = ExpertTolerance(boundary_sd_mm=0.0)
    belief0 = believed_slice(truth2, np.random.default_rng(0), sampling, exact)
    assert np.array_equal(noticed_edit(truth, belief0, truth2, sampling, exact), truth2)


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
        for region, values in BRATS_REGIONS.items():
            truth = region_mask(label, values)
            belief = expert.belief(truth, 0, spacing, seed=7)
            for b, t in zip(belief, truth):
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
    """The demo's phantoms (seeds 100-102): correcting every slice never lowers any region's Dice."""
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.cli.demo import DEMO_SEEDS_START
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.simulation.evaluate_folders import STRATEGY_NAMES

    write_phantoms(tmp_path / "cases", 3, seed=DEMO_SEEDS_START, layout="cases")
    out = tmp_path / "out"
    assert main(["--progress", "none", "evaluate", "--cases", str(tmp_path / "cases"), "--out", str(out),
                 "--members", "folds", "--disable-tta", "--random-seeds", "3", "--device", "cpu",
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
                 "--replay-only", "--random-seeds", "3", "--expert", "noisy,perfect"]) == 0
    again = json.loads((out / "cases" / "phantom_0100" / "evaluation.json").read_text())
    assert again["rows"] == first["rows"]


def test_perfect_expert_is_the_reference():
    truth = np.zeros((3, 8, 8), bool)
    truth[1, 2:5, 2:5] = True
    assert np.array_equal(PerfectExpert().corrected(~truth, truth, 0), truth)
