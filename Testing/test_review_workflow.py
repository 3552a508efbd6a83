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
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[1]
    return prepare_review_case(ReviewRequest([str(case_dir)], review_folder=str(tmp_path_factory.mktemp("review") / "out"),
                                             settings=AnalysisSettings(device="cpu", tta=False)))


def _open(scene, case, corrected=True, folder=None):
    """What both front ends do on start: the saved corrections (if any) into the scene, then the session."""
    from IWUOSegmentationLib.mrml.review_session import SessionOptions
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        load_analysis_into_scene,
        open_review,
        read_corrected_segmentation,
    )
    from IWUOSegmentationLib.review.folder import ReviewFolder

    folder = case.folder if folder is None else ReviewFolder(folder)
    volume = add_volume_from_image(case.images[0], "FLAIR")
    saved = read_corrected_segmentation(folder.corrected, case.shape) if corrected else None
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels, saved,
                                      expected_identity=case.identity)
    session = open_review(scene, loaded, volume, folder.log, SessionOptions(budget_slices=10))
    return volume, loaded, session


def _add_box(loaded, volume, slice_index: int, rows=slice(10, 14), cols=slice(10, 15)) -> np.ndarray:
    """A brush-like edit through the segmentation node: add a box to the first segment on one slice."""
    import slicer.util

    segment_id = next(iter(loaded.labels))
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded.segmentation, segment_id, volume) > 0
    added = np.zeros_like(mask)
    added[slice_index, rows, cols] = ~mask[slice_index, rows, cols]
    slicer.util.updateSegmentBinaryLabelmapFromArray((mask | added).astype(np.uint8), loaded.segmentation,
                                                     segment_id, volume)
    return added


def _loaded_like(session):
    """What _add_box needs of a loaded analysis, from a resumed session."""
    from types import SimpleNamespace

    return SimpleNamespace(segmentation=session.segmentation, labels=session.label_values)


def test_prepared_case_matches_channels_and_analyses(prepared_case):
    assert [p for p in prepared_case.channel_names] == ["FLAIR", "T1c"]
    summary = json.loads((prepared_case.analysis_dir / "summary.json").read_text())
    assert summary["outputs"] and (prepared_case.analysis_dir / "segmentation.nii.gz").is_file()
    assert prepared_case.shape == sitk.GetArrayFromImage(prepared_case.images[0]).shape


def test_overlays_include_impact_with_its_colour_table(mrml_scene, prepared_case):
    from IWUOSegmentationLib.mrml.analysis_nodes import ATTR_KIND
    from IWUOSegmentationLib.mrml.review_workflow import OVERLAY_KINDS

    _, loaded, session = _open(mrml_scene, prepared_case, corrected=False)
    assert set(loaded.overlays) == set(OVERLAY_KINDS)
    impact = loaded.overlays["impact"]
    assert impact.GetAttribute(ATTR_KIND) == "impact"
    assert "magma" in impact.GetDisplayNode().GetColorNode().GetName()
    import slicer.util

    values = slicer.util.arrayFromVolume(impact)
    # Per voxel, P(the prediction is wrong there) for the whole tumour, from the analysis files themselves:
    # 1 - P(tumour) where tumour is predicted, P(tumour) where it is not.
    folder = prepared_case.analysis_dir
    p_wt = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "probability_whole_tumor.nii.gz")))
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "segmentation.nii.gz"))) > 0
    expected = np.where(predicted, 1.0 - p_wt, p_wt)
    assert values.shape == expected.shape
    np.testing.assert_allclose(values, expected, atol=1e-6)
    assert predicted.any() and (~predicted).any() and values.max() > 0.3  # both branches and a real error mass
    session.close()


def test_session_hands_over_between_front_ends(prepared_case):
    """Front end A corrects a slice and stops; front end B, in a new scene, resumes the same state."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import (
        corrections_saver,
        segmentation_label_map,
    )

    scene_a = create_headless_scene()
    volume, loaded, session = _open(scene_a, prepared_case)
    session.next()
    target = session.next()  # rank 2
    added = _add_box(loaded, volume, target)
    assert session.flush_edits() == 1
    expected = segmentation_label_map(loaded.segmentation, volume, loaded.labels)
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(prepared_case.folder.corrected)))
    assert np.array_equal(saved, expected), "the flush did not save the corrected segmentation"
    save = corrections_saver(session.label_values, volume, prepared_case.images[0], prepared_case.folder.corrected)
    assert save(session.accounted_masks()) == prepared_case.folder.corrected
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


def test_corrections_are_saved_before_logged_and_recovered_after_a_crash(prepared_case, tmp_path):
    """Whatever flushes (Next here), the saved segmentation holds every logged correction; a crash between
    saving and logging leaves a saved, unlogged correction, which the next start logs as recovered."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import segmentation_label_map

    prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(prepared_case.analysis_dir / "segmentation.nii.gz")))
    saved = lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "corrected_segmentation.nii.gz")))  # noqa: E731
    scene_a = create_headless_scene()
    volume, loaded, session = _open(scene_a, prepared_case, folder=tmp_path)
    assert [e["kind"] for e in session.log.read()] == ["session_started"], "a fresh session logged a correction"
    first = session.next()
    _add_box(loaded, volume, first)
    second = session.next()  # navigation flushes the pending stroke: saved, then logged
    assert np.array_equal(saved(), segmentation_label_map(loaded.segmentation, volume, loaded.labels))
    assert [e["slice"] for e in session.log.read() if e["kind"] == "slice_corrected"] == [first]

    def fail(message):
        def raise_(*_, **__):
            raise OSError(message)
        return raise_

    session.edits.save, save = fail("disk full"), session.edits.save
    added = _add_box(loaded, volume, second)
    with pytest.raises(OSError, match="disk full"):
        session.flush_edits()
    assert session.dirty and [e["slice"] for e in session.log.read() if e["kind"] == "slice_corrected"] == [first]
    session.edits.save = save  # the failed save is retried by the next flush; now the log line is cut off:
    session.log.append = fail("killed")
    with pytest.raises(OSError, match="killed"):
        session.flush_edits()
    edited = segmentation_label_map(loaded.segmentation, volume, loaded.labels)
    assert np.array_equal(saved(), edited) and not np.array_equal(saved()[second], prediction[second])
    session.lock.release()  # as the OS does when the crashed process ends
    scene_a.Clear(1)

    scene_b = create_headless_scene()
    _, _, resumed = _open(scene_b, prepared_case, folder=tmp_path)
    recovered = [e for e in resumed.log.read() if e.get("recovered")]
    assert [e["slice"] for e in recovered] == [second]
    assert sum(recovered[0]["voxels_added"].values()) == int(added.sum()) > 0
    assert resumed.log.summary().slices_corrected == 2 and resumed.flush_edits() == 0
    resumed.close()
    scene_b.Clear(1)
    scene_c = create_headless_scene()  # a third start finds nothing more to recover
    _, _, again = _open(scene_c, prepared_case, folder=tmp_path)
    assert len([e for e in again.log.read() if e.get("recovered")]) == 1
    again.close()
    scene_c.Clear(1)


def test_reopened_scene_resumes_with_the_corrections_saved_after_it(prepared_case, tmp_path):
    """The desktop path: a scene saved mid-review, more corrections, a crash, the scene reopened. The
    segmentation comes back as the review folder saved it (not as the older scene file had it), nothing is
    re-counted, and the next correction is saved on top of all of them."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import resume_review_from_scene, segmentation_label_map
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    (tmp_path / "analysis").symlink_to(prepared_case.analysis_dir)  # a review folder: analysis/ beside the log
    scene_a = create_headless_scene()
    volume, loaded, session = _open(scene_a, prepared_case, folder=tmp_path)
    first = session.next()
    _add_box(loaded, volume, first)
    session.flush_edits()
    scene_file = save_scene(scene_a, str(tmp_path / "scene" / "review.mrml"))
    second = session.next()
    _add_box(loaded, volume, second)
    session.flush_edits()  # saved in the review folder, not in the scene file
    expected = segmentation_label_map(loaded.segmentation, volume, loaded.labels)
    n_events = len(session.log.read())
    session.lock.release()  # as the OS does when the crashed process ends
    scene_a.Clear(1)

    scene_b = create_headless_scene()
    load_scene(scene_b, str(scene_file))
    resumed, analysis = resume_review_from_scene(scene_b)
    assert np.array_equal(segmentation_label_map(resumed.segmentation, resumed.volume, resumed.label_values),
                          expected), "the corrections made after the scene was saved did not come back"
    assert len(resumed.log.read()) == n_events and resumed.flush_edits() == 0, "resuming re-counted corrections"
    assert resumed.log.summary().slices_corrected == 2 and resumed.ranking[resumed.current_rank] == second
    third = resumed.next()
    added = _add_box(_loaded_like(resumed), resumed.volume, third)
    assert resumed.flush_edits() == 1
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "corrected_segmentation.nii.gz")))
    assert np.array_equal(saved != analysis.label_map, (expected != analysis.label_map) | added)
    resumed.close()
    scene_b.Clear(1)


def test_analysis_of_another_case_and_foreign_corrections_are_refused(mrml_scene, prepared_case, tmp_path):
    import slicer.util

    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.mrml.review_workflow import load_analysis_into_scene, read_corrected_segmentation

    small = slicer.util.addVolumeFromArray(np.zeros((8, 9, 10), np.float32), name="other case")
    with pytest.raises(BadInputError, match="belongs to another case"):
        load_analysis_into_scene(mrml_scene, prepared_case.analysis_dir, small, prepared_case.written_labels,
                                 expected_identity=prepared_case.identity)
    foreign = tmp_path / "corrected.nii.gz"
    sitk.WriteImage(sitk.Image(10, 9, 8, sitk.sitkUInt8), str(foreign))
    with pytest.raises(BadInputError, match="not the case's"):
        read_corrected_segmentation(foreign, prepared_case.shape)
    assert read_corrected_segmentation(tmp_path / "none.nii.gz", prepared_case.shape) is None


def test_existing_analysis_is_reused_and_a_wrong_one_refused(prepared_case, phantom_cases, tmp_path):
    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[1]
    reused = prepare_review_case(ReviewRequest([str(case_dir)], None, str(tmp_path / "out"), str(prepared_case.analysis_dir)))
    assert reused.analysis_dir == prepared_case.analysis_dir and not (tmp_path / "out" / "analysis").exists()
    with pytest.raises(BadInputError, match="not an analysis folder"):
        prepare_review_case(ReviewRequest([str(case_dir)], None, str(tmp_path / "out2"), str(tmp_path / "nothing")))
