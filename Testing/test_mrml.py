"""MRML layer on the real Slicer libraries (slicer-core wheel): nodes, overlays, self-test body."""

from __future__ import annotations

import numpy as np
import pytest


def _volume(scene, shape=(6, 20, 30)):
    import slicer.util

    array = np.random.default_rng(0).random(shape).astype(np.float32)
    node = slicer.util.addVolumeFromArray(array, name="input")
    node.SetSpacing(1.0, 2.0, 3.0)
    node.SetOrigin(10.0, -5.0, 7.0)
    return node


def test_headless_scene_has_real_slicer_logics(mrml_scene):
    import slicer

    assert isinstance(mrml_scene, slicer.vtkMRMLScene)
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") > 10
    assert slicer.mrmlScene is mrml_scene


def test_heatmap_has_colour_table_fitted_window_and_transparent_background(mrml_scene):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_heatmap_volume

    ref = _volume(mrml_scene)
    heat = np.zeros((6, 20, 30), np.float32)
    heat[2:4, 5:15, 5:25] = np.linspace(0.1, 0.8, 20)[None, None, :]
    node = add_heatmap_volume(mrml_scene, heat, ref, "entropy", kind="uncertainty")
    display = node.GetDisplayNode()
    color = mrml_scene.GetNodeByID(display.GetColorNodeID())
    assert color.GetName() == "IWUO inferno" and color.GetNumberOfColors() == 256
    assert not display.GetAutoWindowLevel()
    assert display.GetWindowLevelMin() == pytest.approx(0.0)
    assert display.GetWindowLevelMax() == pytest.approx(np.percentile(heat[heat > 0], 99.5), rel=1e-4)
    assert display.GetApplyThreshold() and 0 < display.GetLowerThreshold() < 0.1
    import vtk

    ma, mb = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    ref.GetIJKToRASMatrix(ma)
    node.GetIJKToRASMatrix(mb)
    elements = [(ma.GetElement(r, c), mb.GetElement(r, c)) for r in range(4) for c in range(4)]
    assert all(x == y for x, y in elements) and ma.GetElement(1, 1) != 1.0  # a non-trivial geometry was copied
    impact = add_heatmap_volume(mrml_scene, heat, ref, "impact", kind="impact")
    assert mrml_scene.GetNodeByID(impact.GetDisplayNode().GetColorNodeID()).GetName() == "IWUO magma"


def test_segmentation_node_round_trips_the_label_map(mrml_scene):
    import slicer.util

    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation

    ref = _volume(mrml_scene)
    labels = np.zeros((6, 20, 30), np.uint8)
    labels[1:4, 2:8, 3:9] = 2
    labels[2:3, 4:6, 5:7] = 1
    labels[3, 10:12, 20:25] = 4
    names = {"background": 0, "whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4}
    seg = add_segmentation(mrml_scene, labels, ref, names, "prediction")
    segmentation = seg.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == \
        ["tumor_core", "whole_tumor", "enhancing_tumor"]
    for name, value in names.items():
        if value:
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(seg, name, ref)
            assert np.array_equal(mask > 0, labels == value), name
    assert segmentation.GetSegment("enhancing_tumor").GetColor() == pytest.approx((1.0, 0.85, 0.2))


def test_foreground_layer_in_every_slice_view(mrml_scene):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_heatmap_volume, show_as_foreground

    ref = _volume(mrml_scene)
    composites = [mrml_scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    heat = add_heatmap_volume(mrml_scene, np.ones((6, 20, 30), np.float32), ref, "h")
    assert show_as_foreground(mrml_scene, ref, heat, opacity=0.4) == 3
    for c in composites:
        assert c.GetBackgroundVolumeID() == ref.GetID() and c.GetForegroundVolumeID() == heat.GetID()
        assert c.GetForegroundOpacity() == pytest.approx(0.4)


def test_self_test_body_passes_on_slicer_core(mrml_scene, tmp_path):
    """The module's self-test body on the shipped phantom analysis (test_torch_free.py runs it without torch)."""
    from IWUOSegmentationLib.mrml.self_test import run_self_test

    result = run_self_test(mrml_scene, str(tmp_path))
    print(result)
    assert result["dice_wt"] >= 0.7
    assert result["segments"] == ["whole_tumor", "tumor_core", "enhancing_tumor"]
    assert result["members"] == 16  # 8 mirror flips x 2 folds
    assert result["slices_logged"] >= 1 and result["perfect_dice"][-1] > result["perfect_dice"][0]
    assert len(result["noisy_dice"]) == len(result["perfect_dice"])
    # Perfect-expert curves start at the model's Dice and rise to 1, so their AUBC lies in (Dice, 1);
    # IWUO's ranking must buy more Dice per slice than random's.
    assert result["dice_wt"] < result["random_aubc"] < result["iwuo_aubc"] < 1
    assert (tmp_path / "perfect.budget.jsonl").is_file() and (tmp_path / "corrected_segmentation.nii.gz").is_file()


def test_bundled_model_reproduces_the_shipped_self_test_analysis(tmp_path):
    """The module's extra self-test where torch and nnU-Net are installed: the shipped analysis is the demo model's
    (same recorded identity, same segmentation); regenerate it with scripts/make_self_test_case.py if this fails."""
    from IWUOSegmentationLib.mrml.self_test import run_inference_check

    result = run_inference_check(str(tmp_path))
    assert result["wt_agreement"] > 0.99 and result["members"] == 16


def test_shipped_self_test_case_is_small_and_loads_as_sample_data(mrml_scene, demo_model, tmp_path):
    """Under 2 MB; every Sample Data URI is a file:// URI that urllib (SampleData's downloader) copies, the copy
    matches the registered checksum and loads with Slicer's own readers (volumes logic, segmentation storage
    node); the volumes so loaded have the identity the shipped analysis records, so it opens on them."""
    import hashlib
    import urllib.request

    from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, sample_data_source

    total = sum(p.stat().st_size for p in CASE_FOLDER.rglob("*") if p.is_file())
    assert total < 2_000_000, total
    source = sample_data_source()
    n = len(source["uris"])
    assert n == len(source["fileNames"]) == len(source["nodeNames"]) == len(source["loadFileType"]) == 3
    assert source["loadFileType"] == ["VolumeFile", "VolumeFile", "SegmentationFile"]
    for uri, name, checksum in zip(source["uris"], source["fileNames"], source["checksums"]):
        assert uri.startswith("file://")
        copy = tmp_path / name
        urllib.request.urlretrieve(uri, copy)
        assert checksum == "SHA256:" + hashlib.sha256(copy.read_bytes()).hexdigest()
    from IWUOSegmentationLib.data.self_test_case import analysis_folder
    from IWUOSegmentationLib.mrml.review_workflow import identity_of_volumes, load_analysis_into_scene

    volumes_logic, segmentations_logic = mrml_scene._iwuo_logics[2:]
    copies = [tmp_path / name for name in source["fileNames"]]
    volumes = [volumes_logic.AddArchetypeVolume(str(path), node) for path, node in zip(copies, source["nodeNames"])]
    reference = segmentations_logic.LoadSegmentationFromFile(str(copies[2]), False, source["nodeNames"][2])
    assert reference.GetSegmentation().GetNumberOfSegments() == 4  # labels 1-4 of the phantom
    loaded = load_analysis_into_scene(mrml_scene, analysis_folder(), volumes[0], demo_model.written_labels,
                                      expected_identity=identity_of_volumes(volumes[:2], demo_model))
    assert loaded.segmentation.GetSegmentation().GetNumberOfSegments() == 3


def test_reference_on_another_grid_is_resampled_onto_the_input(mrml_scene):
    import slicer.util

    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation, reference_mask_on_volume

    fine = _volume(mrml_scene, shape=(12, 40, 60))
    coarse = slicer.util.addVolumeFromArray(np.zeros((6, 20, 30), np.float32), name="coarse")
    coarse.SetSpacing(2.0, 4.0, 6.0)  # twice the fine volume's spacing (1, 2, 3), same origin
    coarse.SetOrigin(10.0 - 0.5, -5.0 - 1.0, 7.0 - 1.5)
    labels = np.zeros((6, 20, 30), np.uint8)
    labels[2:4, 5:10, 10:20] = 1
    reference = add_segmentation(mrml_scene, labels, coarse, {"background": 0, "tumour": 1}, "reference")
    mask = reference_mask_on_volume(reference, fine)
    assert mask.shape == (12, 40, 60)
    # Each fine voxel takes the label of the coarse voxel its centre lies in: fine centre 10 + i (x) is at
    # coarse index (i + 0.5) / 2, nearest (i + 1) // 2 (never a tie); likewise along y and z. Beyond the coarse
    # grid's last voxel: 0 (the zero padding).
    k, j, i = np.indices(mask.shape)
    expected = np.pad(labels, 1)[1:, 1:, 1:][(k + 1) // 2, (j + 1) // 2, (i + 1) // 2]
    assert mask.sum() == labels.sum() * 8
    assert np.array_equal(mask, expected > 0)
    empty = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(BadInputError, match="has no segments"):
        reference_mask_on_volume(empty, fine)
