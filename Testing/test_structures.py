"""Structures from a model's dataset.json: labels, regions, all foreground, review targets, BraTS conventions.

Hand-written dataset.json files and synthetic probability arrays: no model needed, so these run in CI.
"""

from __future__ import annotations

import numpy as np
import pytest

from IWUOSegmentationLib.data.structures import (
    ALL_FOREGROUND,
    convert_labels,
    detect_convention,
    evaluation_regions,
    reference_label_check,
    resolve_convention,
    structures_from_dataset_json,
    structures_from_summary,
)
from IWUOSegmentationLib.errors import BadInputError
from IWUOSegmentationLib.ranking.slice_scores import iwuo_ranking
from IWUOSegmentationLib.simulation.region_metrics import region_metrics

PROSTATE = {"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0, "PZ": 1, "TZ": 2}}
BRATS2013_REGIONS = {"labels": {"background": 0, "whole_tumor": [1, 2, 3, 4], "tumor_core": [1, 3, 4],
                                "enhancing_tumor": [4]}, "regions_class_order": [2, 1, 4]}
BRATS2023_LABELS = {"labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 3}}
LIVER_REGIONS = {"labels": {"background": 0, "liver": [1, 2], "tumour": [2], "vessels": [3]},
                 "regions_class_order": [1, 2, 3]}


def _softmax(rng, shape, n):
    logits = rng.normal(size=(n, *shape))
    e = np.exp(logits)
    return (e / e.sum(0)).astype(np.float32)


def test_label_model_structures_each_label_and_all_foreground():
    model = structures_from_dataset_json(PROSTATE)
    assert model.names == ["PZ", "TZ", ALL_FOREGROUND]
    assert model.default == ALL_FOREGROUND and model.target_choices()[0] == ALL_FOREGROUND
    assert model.get("tz").label_values == (2,) and model.get(None).label_values == (1, 2)
    probs = _softmax(np.random.default_rng(0), (4, 5, 6), 3)
    np.testing.assert_allclose(model.get("PZ").probability(probs), probs[1])
    np.testing.assert_allclose(model.get(ALL_FOREGROUND).probability(probs), 1 - probs[0], atol=1e-6)
    label_map = np.array([0, 1, 2, 2])
    assert model.get("TZ").mask(label_map).tolist() == [False, False, True, True]
    assert model.brats == {}  # not a tumour model: no WT/TC/ET
    with pytest.raises(BadInputError, match="no structure 'WT'.*all foreground, PZ, TZ"):
        model.get("WT")


def test_brats_region_model_union_is_whole_tumour_channel():
    model = structures_from_dataset_json(BRATS2013_REGIONS)
    assert model.default == "whole_tumor" and ALL_FOREGROUND not in model.names
    assert model.get(ALL_FOREGROUND).name == "whole_tumor"
    assert model.get("ET").name == "enhancing_tumor" and model.get("ET").channels == (2,)
    # the written label map (regions_class_order 2, 1, 4) read back as regions
    written = np.array([0, 2, 1, 4])
    assert model.get("TC").mask(written).tolist() == [False, False, True, True]
    assert model.get("WT").mask(written).tolist() == [False, True, True, True]
    assert detect_convention(model) == "brats2013"


def test_region_model_without_covering_region_gets_a_max_union():
    model = structures_from_dataset_json(LIVER_REGIONS)
    union = model.get(None)
    assert union.name == ALL_FOREGROUND and union.label_values == (1, 2, 3)
    sig = np.random.default_rng(1).random((3, 4, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(union.probability(sig), sig.max(0))
    np.testing.assert_allclose(model.get("vessels").probability(sig), sig[2])


def test_brats2023_label_model_maps_wt_tc_et_to_its_values():
    model = structures_from_dataset_json(BRATS2023_LABELS)
    assert model.get("ET").label_values == (3,)
    assert model.get("TC").label_values == (1, 3) and model.get("WT").label_values == (1, 2, 3)
    assert model.default == "whole_tumor"
    assert detect_convention(model) == "brats2023"
    probs = _softmax(np.random.default_rng(2), (3, 3, 3), 4)
    np.testing.assert_allclose(model.get("TC").probability(probs), probs[1] + probs[3], atol=1e-6)


def test_brats2023_enhancing_tumour_is_scored_on_label_3():
    """ET of a 2023-convention model is label 3; the old fixed BraTS 2013 regions gave it an empty ET (Dice 1)."""
    model = structures_from_dataset_json(BRATS2023_LABELS)
    reference = np.zeros((8, 8, 8), np.uint8)
    reference[2:6, 2:6, 2:6] = 2
    reference[3:5, 3:5, 3:5] = 3  # ET, 8 voxels
    reference[3, 3, 3] = 1
    prediction = reference.copy()
    prediction[3:5, 3:5, 4] = 2  # 4 of the 7 ET voxels predicted as oedema
    regions = evaluation_regions(model)
    assert list(regions) == ["WT", "TC", "ET"]
    metrics = region_metrics(prediction, reference, (1.0, 1.0, 1.0), regions)
    assert metrics["ET"]["dice"] == pytest.approx(2 * 3 / (3 + 7))
    assert metrics["WT"]["dice"] == pytest.approx(1.0)
    assert metrics["TC"]["dice"] == pytest.approx(2 * 4 / (4 + 8))


def test_reference_convention_differs_from_the_model_label_space():
    """nnU-Net's BraTS 2021 models relabel (1 ED, 2 NCR, 3 ET); original 2021 references use 1, 2, 4."""
    nnunet_brats21 = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                                 "enhancing tumor": [3]}, "regions_class_order": [1, 2, 3]}
    model = structures_from_dataset_json(nnunet_brats21)
    regions = evaluation_regions(model, convention="brats2021")
    assert regions["ET"].structure.name == "enhancing tumor" and regions["ET"].reference_values == (4,)
    assert regions["TC"].reference_values == (1, 4) and regions["WT"].reference_values == (1, 2, 4)
    written = np.array([1, 2, 3, 0]).reshape(1, 2, 2)  # ED, NCR, ET written by the model
    reference = np.array([2, 1, 4, 0]).reshape(1, 2, 2)  # the same voxels in BraTS 2021 labels
    metrics = region_metrics(written, reference, (1.0, 1.0, 1.0), regions)
    assert all(m["dice"] == 1.0 for m in metrics.values())


def test_generic_label_names_with_a_declared_convention():
    model = structures_from_dataset_json({"labels": {"background": 0, "label_1": 1, "label_2": 2, "label_3": 3}})
    assert evaluation_regions(model).keys() == {"label_1", "label_2", "label_3", ALL_FOREGROUND}
    regions = evaluation_regions(model, convention="2024")
    assert regions["ET"].structure.label_values == (3,) and regions["TC"].structure.label_values == (1, 3)


def test_conventions_by_year_and_conversion():
    assert resolve_convention("2015") == "brats2013" and resolve_convention("BraTS 2019") == "brats2021"
    assert resolve_convention("brats2024") == "brats2023"
    with pytest.raises(BadInputError, match="Unknown label convention 'brats2011'"):
        resolve_convention("brats2011")
    labels_2013 = np.array([0, 1, 2, 3, 4])
    assert convert_labels(labels_2013, "brats2013", "brats2023").tolist() == [0, 1, 2, 1, 3]
    assert convert_labels(labels_2013, "brats2013", "brats2021").tolist() == [0, 1, 2, 1, 4]


def test_unknown_reference_labels_are_named():
    model = structures_from_dataset_json(PROSTATE)
    with pytest.raises(BadInputError, match=r"case7: the reference has label values \[3, 5\]"):
        reference_label_check({0, 1, 3, 5}, set(model.label_values), "case7", "the model's labels")
    reference_label_check({0, 1, 2}, set(model.label_values), "case7", "the model's labels")


def test_ranking_follows_the_chosen_target():
    """Structure A is uncertain on slice 2, structure B on slice 6: each target ranks its own slice first."""
    model = structures_from_dataset_json(PROSTATE)
    shape = (8, 10, 10)
    probs = np.zeros((3, *shape), np.float32)
    probs[0] = 1.0
    label_map = np.zeros(shape, np.uint8)
    for value, k in ((1, 2), (2, 6)):
        label_map[k, 2:8, 2:8] = value
        probs[:, k, 2:8, 2:8] = 0.0
        probs[value, k, 2:8, 2:8] = 1.0
        probs[value, k, 2:8, 5:8] = 0.55  # the uncertain half
        probs[0, k, 2:8, 5:8] = 0.45
    entropy = -(probs * np.log(np.clip(probs, 1e-9, 1))).sum(0)
    firsts = {}
    for target in ("PZ", "TZ"):
        _, _, rows = iwuo_ranking(label_map, probs, ["background", "PZ", "TZ"], False, entropy, (1, 1, 1),
                                  region=target, structures=model)
        firsts[target] = rows[0]["slice"]
    assert firsts == {"PZ": 2, "TZ": 6}


def test_structures_from_an_analysis_summary():
    summary = {"model": {"labels": BRATS2023_LABELS["labels"]}, "outputs": ["background", "NCR", "ED", "ET"],
               "region_based": False}
    assert structures_from_summary(summary).get("ET").channels == (3,)
    with pytest.raises(BadInputError, match="do not match the model's labels"):
        structures_from_summary({**summary, "outputs": ["background", "x"]})


def test_nnunet_ignore_label_is_no_structure_but_allowed_in_references():
    model = structures_from_dataset_json({"labels": {"background": 0, "vessel": 1, "ignore": 2}})
    assert model.names == ["vessel"] and model.get(None).channels == (1,)
    from IWUOSegmentationLib.data.structures import reference_values_allowed

    assert reference_values_allowed(model) == {1, 2}
