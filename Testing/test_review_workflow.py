"""The review workflow both front ends share (mrml/review_workflow.py), on real MRML (slicer-core).

A session's files are the hand-over between the desktop module and the browser app: what one
front end leaves (BudgetLog + corrected label map) the other resumes from, in a fresh scene.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk


@pytest.fixture(scope="module")
def prepared_case(phantom_cases, tmp_path_factory):
    """`iwuo review`'s preparation: channels matched by name, analysis run once (no mirroring, for speed)."""
    from IWUOSegmentationLib.review_case import prepare_review_case

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[1]
    return prepare_review_case([str(case_dir)], None, str(tmp_path_factory.mktemp("review") / "out"),
                               device="cpu", tta=False)


def _open(scene, case, corrected=True):
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        load_analysis_into_scene,
        open_review,
        read_corrected_segmentation,
    )

    volume = add_volume_from_image(case.images[0], "FLAIR")
    saved = read_corrected_segmentation(case.folder.corrected, case.shape) if corrected else None
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels, saved)
    session = open_review(scene, loaded.analysis, volume, loaded.segmentation, loaded.labels,
                          case.folder.log, budget_slices=10)
    return volume, loaded, session


def test_prepared_case_matches_channels_and_analyses(prepared_case):
    assert [p for p in prepared_case.channel_names] == ["FLAIR", "T1c"]
    summary = json.loads((prepared_case.analysis_dir / "summary.json").read_text())
    assert summary["outputs"] and (prepared_case.analysis_dir / "segmentation.nii.gz").is_file()
    assert prepared_case.shape == sitk.GetArrayFromImage(prepared_case.images[0]).shape


def test_overlays_include_impact_with_its_colour_table(mrml_scene, prepared_case):
    from IWUOSegmentationLib.mrml.review_workflow import OVERLAY_KINDS

    _, loaded, session = _open(mrml_scene, prepared_case, corrected=False)
    assert set(loaded.overlays) == set(OVERLAY_KINDS)
    impact = loaded.overlays["impact"]
    assert impact.GetAttribute("IWUO.kind") == "impact"
    assert "magma" in impact.GetDisplayNode().GetColorNode().GetName()
    import slicer.util

    values = slicer.util.arrayFromVolume(impact)
    assert 0.0 <= values.min() and values.max() <= 1.0 and values.max() > 0.3  # P(error) in [0, 1], high at edges
    session.close()


def test_session_hands_over_between_front_ends(prepared_case):
    """Front end A corrects a slice and stops; front end B, in a new scene, resumes the same state."""
    import slicer.util

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import (
        save_session_corrections,
        segmentation_label_map,
    )

    scene_a = create_headless_scene()
    volume, loaded, session = _open(scene_a, prepared_case)
    session.next()
    target = session.next()  # rank 2
    segment_id = next(iter(loaded.labels))
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded.segmentation, segment_id, volume) > 0
    added = np.zeros_like(mask)
    added[target, 10:14, 10:15] = ~mask[target, 10:14, 10:15]
    slicer.util.updateSegmentBinaryLabelmapFromArray((mask | added).astype(np.uint8), loaded.segmentation,
                                                     segment_id, volume)
    assert session.flush_edits() == 1
    assert save_session_corrections(session, prepared_case.images[0]) == prepared_case.folder.corrected
    expected = segmentation_label_map(loaded.segmentation, volume, loaded.labels)
    session.close()
    scene_a.Clear(1)
    assert not list(prepared_case.folder.root.glob(".*partial*")), "a temporary file was left behind"

    scene_b = create_headless_scene()
    volume_b, loaded_b, resumed = _open(scene_b, prepared_case)
    assert resumed.current_rank == 1 and resumed.ranking[1] == target
    status = resumed.table.GetTable().GetColumnByName("status")
    assert [status.GetValue(i) for i in range(3)] == ["shown", "corrected", "pending"]
    assert np.array_equal(segmentation_label_map(loaded_b.segmentation, volume_b, loaded_b.labels), expected)
    summary = resumed.log.summary()
    assert summary.slices_corrected == 1 and summary.voxels_changed == int(added.sum())
    assert resumed.flush_edits() == 0, "resuming counted the saved corrections as new edits"
    resumed.close()
    scene_b.Clear(1)


def test_analysis_of_another_case_and_foreign_corrections_are_refused(mrml_scene, prepared_case, tmp_path):
    import slicer.util

    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.mrml.review_workflow import load_analysis_into_scene, read_corrected_segmentation

    small = slicer.util.addVolumeFromArray(np.zeros((8, 9, 10), np.float32), name="other case")
    with pytest.raises(BadInputError, match="belongs to another case"):
        load_analysis_into_scene(mrml_scene, prepared_case.analysis_dir, small, prepared_case.written_labels)
    foreign = tmp_path / "corrected.nii.gz"
    sitk.WriteImage(sitk.Image(10, 9, 8, sitk.sitkUInt8), str(foreign))
    with pytest.raises(BadInputError, match="not the case's"):
        read_corrected_segmentation(foreign, prepared_case.shape)
    assert read_corrected_segmentation(tmp_path / "none.nii.gz", prepared_case.shape) is None


def test_existing_analysis_is_reused_and_a_wrong_one_refused(prepared_case, phantom_cases, tmp_path):
    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.review_case import prepare_review_case

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[1]
    reused = prepare_review_case([str(case_dir)], None, str(tmp_path / "out"), str(prepared_case.analysis_dir))
    assert reused.analysis_dir == prepared_case.analysis_dir and not (tmp_path / "out" / "analysis").exists()
    with pytest.raises(BadInputError, match="not an analysis folder"):
        prepare_review_case([str(case_dir)], None, str(tmp_path / "out2"), str(tmp_path / "nothing"))
