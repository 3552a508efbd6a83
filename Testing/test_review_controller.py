"""The review controller both front ends drive (mrml/review_controller.py), on real MRML (slicer-core).

The sequence a clinician goes through in the desktop module: analyse -> review -> File > Close
Scene -> open another case -> reopen the first scene -> resume, with the Qt layer's calls made
directly (what the module's widgets call is one line into this controller).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk


@pytest.fixture(scope="module")
def analysed_case(phantom_cases, tmp_path_factory):
    """One phantom analysed once (no mirroring, for speed); its reference label map beside it."""
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[2]
    case = prepare_review_case(ReviewRequest([str(case_dir)], review_folder=str(tmp_path_factory.mktemp("controller") / "out"),
                                             settings=AnalysisSettings(device="cpu", tta=False)))
    return case, sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "label.nii.gz")))


def _edit(session, slice_index: int) -> None:
    """A brush-like edit through the segmentation node on one slice."""
    import slicer.util

    segment_id = next(iter(session.label_values))
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(session.segmentation, segment_id, session.volume) > 0
    mask[slice_index, 10:14, 10:15] = ~mask[slice_index, 10:14, 10:15]
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), session.segmentation, segment_id,
                                                     session.volume)


def _foreground(scene):
    from IWUOSegmentationLib.mrml.review_controller import red_node

    composite = red_node(scene, "vtkMRMLSliceCompositeNode") or scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    return scene.GetNodeByID(composite.GetForegroundVolumeID() or "")


def _data_nodes(scene) -> tuple[int, int]:
    """Segmentations and scalar volumes (heatmaps) in the scene: what a second load would add. (Display nodes are
    not counted: slicer.util.arrayFromSegmentBinaryLabelmap leaves its temporary display node on slicer-core.)"""
    return (scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"),
            scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))


def _views(scene):
    """The Red view's slice and composite nodes, as the application's layout would create them."""
    for cls in ("vtkMRMLSliceNode", "vtkMRMLSliceCompositeNode"):
        node = scene.AddNewNodeByClass(cls)
        node.SetLayoutName("Red")
        if cls == "vtkMRMLSliceNode":
            node.SetName("Red")


def test_analyse_review_close_other_case_reopen_resume(mrml_scene, analysed_case, tmp_path):
    from IWUOSegmentationLib.mrml.analysis_nodes import add_segmentation
    from IWUOSegmentationLib.mrml.review_controller import ReviewController
    from IWUOSegmentationLib.mrml.review_workflow import OVERLAY_KINDS, add_volume_from_image
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    case, reference = analysed_case
    for name in ("A", "B"):  # review folders: the analysis inside each
        (tmp_path / name).mkdir()
        (tmp_path / name / "analysis").symlink_to(case.analysis_dir)
    scene = mrml_scene
    _views(scene)
    flushes = []
    controller = ReviewController(scene, schedule=flushes.append)

    # analyse (the analysis exists) -> review
    volume_a = add_volume_from_image(case.images[0], "FLAIR A")
    session = controller.open_case(tmp_path / "A", volume_a, case.written_labels, case.identity)
    n_nodes = _data_nodes(scene)
    assert controller.open_case(tmp_path / "A", volume_a, case.written_labels, case.identity) \
        is session and _data_nodes(scene) == n_nodes, "Analyse again added nodes to the scene"
    controller.act("next")
    first = session.ranking[session.current_rank]
    _edit(session, first)
    assert flushes, "the front end's flush scheduler was not called for an edit"
    controller.act("next")  # flushes the edit: saved, then logged
    controller.act("mark_corrected")
    reference_node = add_segmentation(scene, (reference > 0).astype(np.uint8), volume_a, {"tumour": 1},
                                      "Reference A")
    assert controller.set_reference(reference_node).startswith("All-foreground Dice")
    controller.show_overlay("variance", 0.3)
    assert _foreground(scene).GetName() == "FLAIR A variance"
    progress = controller.progress()
    corrected, budget, text = progress.slices_corrected, progress.budget_slices, progress.budget_text
    assert (corrected, budget) == (2, 20) and text.startswith("2 of 20 slices")
    status = progress.status_text
    scene_file = save_scene(scene, str(tmp_path / "scene" / "A.mrml"))
    saved_volume_id = volume_a.GetID()

    # File > Close Scene: nothing stale is kept, the actions do nothing
    controller.close()
    scene.Clear(0)
    assert controller.session is None and controller.overlays == {} and controller.volume is None
    for action in ("next", "skip", "mark_corrected"):
        controller.act(action)
    controller.show_overlay("entropy", 0.5)
    progress = controller.progress()
    assert (progress.slices_corrected, progress.budget_slices, progress.budget_text) == (0, 1, "") and \
        not controller.has_saved_review()

    # another case, then closed too
    _views(scene)
    volume_b = add_volume_from_image(case.images[0], "FLAIR B")
    other = controller.open_case(tmp_path / "B", volume_b, case.written_labels, case.identity)
    controller.act("next")
    assert other.log.path.parent == tmp_path / "B" and other.volume.GetName() == "FLAIR B"
    controller.close()
    scene.Clear(0)

    # reopen the first scene into a scene that already holds a volume (its node IDs are taken: remapped)
    add_volume_from_image(case.images[0], "FLAIR B again")
    load_scene(scene, str(scene_file))
    assert controller.has_saved_review()
    resumed = controller.resume()
    assert resumed.volume.GetName() == "FLAIR A" and resumed.volume.GetID() != saved_volume_id, \
        "the test must import into taken IDs"
    assert resumed.segmentation.GetName() == "FLAIR A IWUO segmentation"
    assert sorted(controller.overlays) == sorted(OVERLAY_KINDS)
    assert all(node.GetName() == f"FLAIR A {kind}" for kind, node in controller.overlays.items())
    controller.show_overlay("impact", 0.4)
    assert _foreground(scene).GetName() == "FLAIR A impact"
    assert controller.reference.GetName() == "Reference A" and resumed.reference_segmentation is not None
    progress = controller.progress()
    assert progress.budget_text.split(" · ")[0] == text.split(" · ")[0] and progress.status_text == status
    assert resumed.log.summary().slices_corrected == 2 and resumed.flush_edits() == 0
    controller.act("skip")  # right after resume
    assert "slice_skipped" in [e["kind"] for e in resumed.log.read()[-2:]]
    assert controller.export_report().is_file()
    controller.close()  # e.g. the module reloaded: a new controller, the review still in the scene
    n_nodes = _data_nodes(scene)
    again = ReviewController(scene).open_case(tmp_path / "A", resumed.volume, case.written_labels, case.identity)
    assert _data_nodes(scene) == n_nodes and again.log.summary().slices_corrected == 2, \
        "Analyse on the case the scene already reviews must resume it, not add a segmentation and heatmaps"
    again.close()


def test_skip_and_done_right_after_a_resume_with_nothing_visited(mrml_scene, analysed_case, tmp_path):
    """Defect 12: a resumed session whose log has only shown slices has no current rank (-1): Skip shows the
    first slice, Done does nothing; neither writes a status at rank -1."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_controller import ReviewController
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image

    case, _ = analysed_case
    (tmp_path / "analysis").symlink_to(case.analysis_dir)
    controller = ReviewController(mrml_scene)
    volume = add_volume_from_image(case.images[0], "FLAIR")
    controller.open_case(tmp_path, volume, case.written_labels, case.identity, budget_slices=7)
    controller.act("next")
    controller.close()

    scene = create_headless_scene()
    again = ReviewController(scene)
    session = again.open_case(tmp_path, add_volume_from_image(case.images[0], "FLAIR"), case.written_labels,
                              case.identity, analysis_dir=case.analysis_dir)
    assert session.current_rank == -1
    n_events = len(session.log.read())
    again.act("mark_corrected")
    assert len(session.log.read()) == n_events and session.current_rank == -1
    again.act("skip")
    assert session.current_rank == 0 and len(session.log.read()) == n_events
    status = session.table.GetTable().GetColumnByName("status")
    assert status.GetValue(0) == "shown"
    assert again.progress().budget_slices == 7, "the budget is the one the session started with, whoever resumes it"
    with pytest.raises(IndexError):
        session.navigation.set_status(-1, "skipped")
    again.close()
    scene.Clear(1)


def test_segment_editor_node_is_the_modules_own_singleton(mrml_scene):
    import slicer

    from IWUOSegmentationLib.mrml.review_controller import SEGMENT_EDITOR_SINGLETON_TAG, segment_editor_node

    editors = slicer.vtkMRMLSegmentEditorNode()
    editors.SetSingletonTag("SegmentEditor")  # the Segment Editor module's node
    mrml_scene.AddNode(editors)
    node = segment_editor_node(mrml_scene)
    assert node.GetSingletonTag() == SEGMENT_EDITOR_SINGLETON_TAG and node.GetID() != editors.GetID()
    assert segment_editor_node(mrml_scene) is node
    mrml_scene.Clear(0)  # File > Close Scene keeps singletons
    assert segment_editor_node(mrml_scene).GetID() == node.GetID()
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLSegmentEditorNode") == 2


def test_front_end_helpers(mrml_scene, tmp_path, demo_model):
    """What the module's widgets call besides the review: volume per channel, review folder, model channels."""
    import slicer.util

    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.mrml.review_controller import (
        SHORTCUTS,
        match_volume,
        model_channels,
        require_volumes,
        review_folder_of,
    )

    t1c = slicer.util.addVolumeFromArray(np.zeros((2, 3, 4), np.float32), name="BraTS_001 t1-c")
    flair = slicer.util.addVolumeFromArray(np.zeros((2, 3, 4), np.float32), name="case_FLAIR")
    assert match_volume(mrml_scene, "T1c") is t1c and match_volume(mrml_scene, "FLAIR") is flair
    assert match_volume(mrml_scene, "T2") is None
    with pytest.raises(BadInputError, match="one volume for each"):
        require_volumes([flair, None])
    require_volumes([flair, t1c])
    folder, analysed = review_folder_of(tmp_path / "chosen", "case_FLAIR")
    assert folder == str(tmp_path / "chosen") and not analysed
    (tmp_path / "chosen" / "analysis").mkdir(parents=True)
    (tmp_path / "chosen" / "analysis" / "summary.json").write_text("{}")
    assert review_folder_of(tmp_path / "chosen", "x")[1]
    assert review_folder_of(".", "case_FLAIR")[0].endswith("IWUOSegmentation/case_FLAIR")
    channels, line = model_channels(str(demo_model.path))
    assert channels == ["FLAIR", "T1c"] and "FLAIR" in line
    assert model_channels(str(tmp_path / "nothing"))[0] == []
    assert SHORTCUTS == {"p": "previous", "n": "next", "s": "skip", "d": "mark_corrected"}


@pytest.fixture
def shipped_case(mrml_scene, demo_model, tmp_path):
    """The phantom that ships with the module, as volumes in the scene, and a review folder holding a copy of its
    analysis (no inference: the analysis is precomputed)."""
    import shutil

    from IWUOSegmentationLib.data.self_test_case import analysis_folder, channel_paths
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image

    volumes = [add_volume_from_image(sitk.ReadImage(str(path)), name) for path, name in
               zip(channel_paths(), demo_model.channel_names)]
    folder = tmp_path / "review"
    shutil.copytree(analysis_folder(), folder / "analysis")
    return volumes, folder


def test_a_review_that_cannot_be_resumed_says_so_once(mrml_scene, demo_model, shipped_case, tmp_path, monkeypatch):
    """Defect: every module entry and scene import raised the same dialog. The controller says it once, as one line
    with what to do; a scene opened again is tried again (and resumes once the cause is fixed)."""
    import shutil

    from IWUOSegmentationLib.mrml.review_controller import ReviewController
    from IWUOSegmentationLib.mrml.review_workflow import identity_of_volumes
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    volumes, folder = shipped_case
    controller = ReviewController(mrml_scene)
    assert controller.resume_saved_review() == (False, "")  # nothing saved: nothing said
    controller.open_case(folder, volumes[0], demo_model.written_labels, identity_of_volumes(volumes, demo_model),
                         show_first=True)
    scene_file = save_scene(mrml_scene, str(tmp_path / "scene" / "review.mrml"))
    controller.scene_about_to_close()
    mrml_scene.Clear(0)
    shutil.move(folder / "analysis", tmp_path / "analysis moved away")

    load_scene(mrml_scene, str(scene_file))
    resumed, line = controller.resume_saved_review()
    assert not resumed and controller.session is None
    assert line.startswith("The review saved with this scene cannot be resumed: ") and "press Analyse" in line
    assert "\n" not in line and str(folder / "analysis") in line, line
    for _entry in range(3):  # module entries, scene imports
        assert controller.resume_saved_review() == (False, "") and not controller.has_saved_review()

    controller.scene_about_to_close()  # File > Close Scene, the cause fixed, the scene opened again
    mrml_scene.Clear(0)
    shutil.move(tmp_path / "analysis moved away", folder / "analysis")
    load_scene(mrml_scene, str(scene_file))
    assert controller.resume_saved_review() == (True, "") and controller.session is not None
    controller.close()

    monkeypatch.setattr(controller, "resume", lambda: (_ for _ in ()).throw(ValueError("table damaged")))
    resumed, line = controller.resume_saved_review()  # not the user's to fix: named with its type, once
    assert not resumed and "ValueError: table damaged (see the log)." in line
    assert controller.resume_saved_review() == (False, "")


def test_the_review_after_an_analysis_opens_on_the_volumes_it_started_with(mrml_scene, demo_model, shipped_case):
    """Defect: the end of an analysis read the panel as it was then. The inputs taken at the start (node IDs with
    the scene-close count, identity hashed once, the opened model) open the review; a volume deleted, or the scene
    closed (its IDs are reused), is refused with one line."""
    from IWUOSegmentationLib.cli.analysis_process import AnalysisRun
    from IWUOSegmentationLib.errors import BadInputError
    from IWUOSegmentationLib.mrml.review_controller import ReviewController, analysis_inputs, open_analysed, volumes_by_id
    from IWUOSegmentationLib.mrml.review_workflow import identity_of_volumes

    volumes, folder = shipped_case
    controller = ReviewController(mrml_scene)
    inputs = analysis_inputs(controller, volumes, demo_model)
    assert inputs["volume_ids"] == [v.GetID() for v in volumes] and inputs["opened_model"] is demo_model
    assert inputs["identity"] == identity_of_volumes(volumes, demo_model) and inputs["scene_closes"] == 0
    run = AnalysisRun(str(demo_model.path), ["input_0000.nrrd", "input_0001.nrrd"], folder, **inputs)
    volumes[0].SetName("renamed while the analysis ran")
    session = open_analysed(controller, run.folder.root, **run.review_inputs())
    assert session.volume is volumes[0] and session.current_rank == 0
    controller.close()

    mrml_scene.RemoveNode(volumes[1])
    with pytest.raises(BadInputError, match="no longer in the scene") as gone:
        open_analysed(controller, folder, **run.review_inputs())
    assert "\n" not in str(gone.value)
    controller.scene_about_to_close()
    mrml_scene.Clear(0)
    others = [mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"another case {i}") for i in range(2)]
    assert [v.GetID() for v in others] == run.volume_ids, "the test needs every ID reused after the close"
    with pytest.raises(BadInputError, match="no longer in the scene"):
        volumes_by_id(controller, run.volume_ids, run.scene_closes)


def test_paint_restored_by_a_loaded_scene_is_turned_off(mrml_scene, tmp_path):
    """A scene saved with Paint active restores it on the module's segment editor node when loaded or imported;
    the module clears it when it is not shown (deactivate_editor_effect), and only on its own node."""
    import slicer

    from IWUOSegmentationLib.mrml.review_controller import deactivate_editor_effect, segment_editor_node
    from IWUOSegmentationLib.mrml.scene_io import load_scene, save_scene

    node = segment_editor_node(mrml_scene)
    node.SetActiveEffectName("Paint")
    editors = slicer.vtkMRMLSegmentEditorNode()
    editors.SetSingletonTag("SegmentEditor")  # the Segment Editor module's node
    editors = mrml_scene.AddNode(editors)
    editors.SetActiveEffectName("Threshold")
    scene_file = save_scene(mrml_scene, str(tmp_path / "paint.mrml"))
    node.SetActiveEffectName("")  # the module was exited
    mrml_scene.Clear(0)
    load_scene(mrml_scene, str(scene_file))
    assert segment_editor_node(mrml_scene) is node and node.GetActiveEffectName() == "Paint", "the hazard is real"
    deactivate_editor_effect(mrml_scene)
    assert node.GetActiveEffectName() == "" and editors.GetActiveEffectName() == "Threshold"
