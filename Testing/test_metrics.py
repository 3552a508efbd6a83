"""Dice agrees with nnU-Net's own compute_metrics; HD95 uses spacing; conventions for empty masks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.data.phantom import make_phantom
from IWUOSegmentationLib.simulation.region_metrics import hd95, region_metrics


def test_dice_matches_nnunet_compute_metrics(tmp_path):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    case = make_phantom(60)
    rng = np.random.default_rng(0)
    prediction = case.label.copy()
    prediction[rng.random(prediction.shape) < 0.02] = 2  # scattered false positives
    prediction[case.label == 4] = np.where(rng.random((case.label == 4).sum()) < 0.3, 1, 4)
    ref_file, pred_file = tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz"
    sitk.WriteImage(case.to_image(case.label), str(ref_file))
    sitk.WriteImage(case.to_image(prediction), str(pred_file))
    ours = region_metrics(prediction, case.label, case.spacing)
    theirs = compute_metrics(str(ref_file), str(pred_file), SimpleITKIO(), [(1, 2, 3, 4), (1, 3, 4), (4,)])["metrics"]
    for region, key in (("WT", (1, 2, 3, 4)), ("TC", (1, 3, 4)), ("ET", (4,))):
        assert ours[region]["dice"] == pytest.approx(theirs[key]["Dice"], abs=1e-9)
    assert ours["ET"]["dice"] < 0.9 < ours["TC"]["dice"] + 0.2


def test_hd95_uses_spacing_and_states_empty_conventions():
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 2, axis=0)  # shifted by 2 voxels along z
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95(a, b, (1.0, 1.0, 3.0)) == pytest.approx(6.0)  # z spacing (SimpleITK order x, y, z)
    empty = np.zeros_like(a)
    assert hd95(empty, empty, (1, 1, 1)) == 0.0
    assert np.isnan(hd95(a, empty, (1, 1, 1)))
