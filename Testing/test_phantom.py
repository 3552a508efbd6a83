"""Phantoms: deterministic, anatomically constrained, BraTS-like labels and intensities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.data.phantom import CHANNELS, grow_tumour, load_substrate, make_phantom, write_phantoms
from IWUOSegmentationLib.errors import BadInputError


def test_same_seed_same_case_other_seed_other_case():
    a, b, c = make_phantom(21), make_phantom(21), make_phantom(22)
    assert np.array_equal(a.label, b.label) and np.array_equal(a.channels["FLAIR"], b.channels["FLAIR"])
    assert not np.array_equal(a.label, c.label)


def test_labels_tumour_compartments_and_z_scoring():
    case = make_phantom(23)
    values = set(np.unique(case.label).tolist())
    assert {0, 1, 2, 4} <= values <= {0, 1, 2, 3, 4}
    assert not (case.label[~case.brain_mask] > 0).any(), "tumour outside the brain"
    for channel in CHANNELS:
        brain = case.channels[channel][case.brain_mask]
        assert abs(brain.mean()) < 1e-3 and abs(brain.std() - 1) < 1e-3
    flair, t1c = case.channels["FLAIR"], case.channels["T1c"]
    wm = case.brain_mask & (case.label == 0)
    assert flair[case.label == 2].mean() > flair[wm].mean() + 0.8, "oedema bright on FLAIR"
    assert t1c[case.label == 4].mean() > t1c[wm].mean() + 0.8, "enhancing rim bright on T1c"
    assert t1c[case.label == 1].mean() < t1c[case.label == 4].mean() - 1.0, "necrosis dark on T1c"
    # the necrotic core sits inside the enhancing rim: its centre is farther from the oedema
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(case.label > 0)
    assert dist[case.label == 1].mean() > dist[case.label == 4].mean() > dist[case.label == 2].mean()


def test_growth_does_not_enter_tissue_without_diffusion():
    sub = load_substrate((2.0, 2.0, 2.0))
    diffusivity = (0.2 * sub["wm"] + 0.02 * sub["gm"]) * (sub["csf"] < 0.5)
    seed = tuple(np.argwhere(sub["wm"] > 0.9)[len(np.argwhere(sub["wm"] > 0.9)) // 2])
    u = grow_tumour(diffusivity, [seed], np.array([2.0, 2.0, 2.0]), 0.025, target_voxels=3000)
    assert (u > 0.2).sum() >= 3000
    assert u[diffusivity == 0].max() == 0.0


def test_anisotropic_spacing_and_nnunet_layout(tmp_path):
    root = write_phantoms(tmp_path, 2, seed=30, layout="nnunet", spacing=(2.0, 2.0, 5.0))
    ds = json.loads((root / "dataset.json").read_text())
    assert ds["numTraining"] == 2 and ds["channel_names"] == {"0": "FLAIR", "1": "T1c"}
    assert ds["labels"]["whole_tumor"] == [1, 2, 3, 4] and ds["regions_class_order"] == [2, 1, 4]
    image = sitk.ReadImage(str(root / "imagesTr" / "phantom_0030_0001.nii.gz"))
    label = sitk.ReadImage(str(root / "labelsTr" / "phantom_0030.nii.gz"))
    assert image.GetSpacing() == pytest.approx((2.0, 2.0, 5.0))
    assert image.GetSize() == label.GetSize() and image.GetSize()[2] < image.GetSize()[0]


def test_case_layout_and_bad_arguments(tmp_path):
    write_phantoms(tmp_path, 1, seed=31, layout="cases")
    folder = tmp_path / "phantom_0031"
    assert {p.name for p in folder.iterdir()} == {"FLAIR.nii.gz", "T1c.nii.gz", "label.nii.gz", "brainmask.nii.gz",
                                                  "phantom.json"}
    with pytest.raises(BadInputError):
        write_phantoms(tmp_path, 0)
    with pytest.raises(BadInputError):
        make_phantom(1, spacing=(1.0, -1.0, 1.0))


def test_phantoms_fall_inside_the_real_cases_range(brats_cases):
    """Median phantom descriptors lie within the 4 real BraTS cases' min-max: the phantoms of docs/realism.md
    (seeds 0-11, 2 mm grid) against the same 4 cases."""
    from IWUOSegmentationLib.data.realism import describe_case

    def read(path):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))

    real = [describe_case(read(c / "Flair_subtrMeanDivStd.nii.gz"), read(c / "T1c_subtrMeanDivStd.nii.gz"),
                          read(c / "OTMultiClass.nii.gz").astype(int), read(c / "brainmask.nii.gz") > 0, (1, 1, 1))
            for c in sorted(brats_cases.iterdir()) if c.is_dir()]
    phantoms = []
    for seed in range(12):
        p = make_phantom(seed)
        phantoms.append(describe_case(p.channels["FLAIR"], p.channels["T1c"], p.label, p.brain_mask, p.spacing))
    for key in real[0]:
        lo, hi = min(r[key] for r in real), max(r[key] for r in real)
        median = float(np.median([p[key] for p in phantoms]))
        assert lo <= median <= hi, f"{key}: phantom median {median} outside real range [{lo}, {hi}]"
