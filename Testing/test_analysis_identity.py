"""An analysis is reused only for the images and the model it was made from (analysis_identity.py).

Two phantoms on the same 2 mm grid (80x94x77): the shipped analysis of phantom 7 must be refused
for phantom 11 — in the MRML layer (desktop module, resume of a saved scene), by `iwuo review
--analysis` (exit 2, through the real command line) and in the browser app's start path — and
accepted for phantom 7 itself.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk


@pytest.fixture(scope="module")
def other_case(phantom_cases) -> Path:
    """Phantom seed 11: another patient on the shipped phantom's grid."""
    from IWUOSegmentationLib.data.self_test_case import channel_paths

    folder = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    assert sitk.ReadImage(str(folder / "FLAIR.nii.gz")).GetSize() == sitk.ReadImage(str(channel_paths()[0])).GetSize()
    return folder


def _identity_of_files(folder: Path, model) -> dict:
    from IWUOSegmentationLib.data.analysis_identity import analysis_identity, case_identity, model_identity
    from IWUOSegmentationLib.data.case_images import CaseImages

    case = CaseImages.from_files([str(folder / f"{c}.nii.gz") for c in model.channel_names])
    return analysis_identity(case_identity(case, model.channel_names), model_identity(model))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_rule_names_what_differs(demo_model, other_case, tmp_path):
    from IWUOSegmentationLib.data.analysis_identity import AnalysisMismatchError, check_identity, read_summary
    from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, analysis_folder

    summary = read_summary(analysis_folder())
    same = _identity_of_files(CASE_FOLDER, demo_model)
    check_identity(summary, "shipped", same["inputs"], same["model"])  # the case it was made from: accepted
    other = _identity_of_files(other_case, demo_model)
    with pytest.raises(AnalysisMismatchError, match=r"input 1 \(FLAIR\): other voxel values.*input 2 \(T1c\)"):
        check_identity(summary, "shipped", other["inputs"], other["model"])
    with pytest.raises(AnalysisMismatchError, match="input 1 .*other voxel values"):  # channels swapped
        check_identity(summary, "shipped", same["inputs"][::-1], same["model"])
    shifted = json.loads(json.dumps(same))
    shifted["inputs"][0]["origin"][2] += 1.0
    with pytest.raises(AnalysisMismatchError, match=r"origin \(76, 110, -72\) in the analysis, \(76, 110, -71\) here"):
        check_identity(summary, "shipped", shifted["inputs"], same["model"])
    one_fold = json.loads(json.dumps(same))
    one_fold["model"]["folds"] = ["0"]
    with pytest.raises(AnalysisMismatchError, match=r"model folds: \['0', '1'\] in the analysis, \['0'\] here"):
        check_identity(summary, "shipped", same["inputs"], one_fold["model"])
    retrained = json.loads(json.dumps(same))
    retrained["model"]["files"]["fold_1/checkpoint_final.pth"] = "0" * 64
    with pytest.raises(AnalysisMismatchError, match="model files with other contents: fold_1/checkpoint_final.pth"):
        check_identity(summary, "shipped", same["inputs"], retrained["model"])
    older = {k: v for k, v in summary.items() if k != "identity"}
    with pytest.raises(AnalysisMismatchError, match="written by an older version.*Analyse the case again"):
        check_identity(older, "old", same["inputs"], same["model"])


def test_mrml_layer_refuses_another_patient_on_the_same_grid(mrml_scene, demo_model, other_case):
    from IWUOSegmentationLib.data.analysis_identity import AnalysisMismatchError
    from IWUOSegmentationLib.data.self_test_case import analysis_folder, channel_paths
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        identity_of_volumes,
        load_analysis_into_scene,
    )

    foreign = [add_volume_from_image(sitk.ReadImage(str(other_case / f"{c}.nii.gz")), f"other {c}")
               for c in demo_model.channel_names]
    n_nodes = mrml_scene.GetNumberOfNodes()
    with pytest.raises(AnalysisMismatchError, match="other voxel values"):
        load_analysis_into_scene(mrml_scene, analysis_folder(), foreign[0], demo_model.written_labels,
                                 expected_identity=identity_of_volumes(foreign, demo_model))
    assert mrml_scene.GetNumberOfNodes() == n_nodes, "a refused analysis put nodes into the scene"
    own = [add_volume_from_image(sitk.ReadImage(str(p)), f"own {i}") for i, p in enumerate(channel_paths())]
    loaded = load_analysis_into_scene(mrml_scene, analysis_folder(), own[0], demo_model.written_labels,
                                      expected_identity=identity_of_volumes(own, demo_model))
    assert loaded.analysis.summary["identity"]["inputs"][0]["name"] == "FLAIR" and len(loaded.overlays) == 5


def test_resume_refuses_an_analysis_replaced_by_another_patients(demo_model, tmp_path):
    """A saved scene of phantom 7; its review folder's analysis is then replaced by another case's: resume refuses."""
    from synthetic_review import reopen_saved_review

    from IWUOSegmentationLib.data.analysis_identity import AnalysisMismatchError
    from IWUOSegmentationLib.data.self_test_case import analysis_folder, channel_paths
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        identity_of_volumes,
        load_analysis_into_scene,
        open_review,
        resume_review_from_scene,
    )
    from IWUOSegmentationLib.mrml.scene_io import load_scene
    from IWUOSegmentationLib.review.folder import ReviewFolder

    folder = ReviewFolder(tmp_path / "review")
    shutil.copytree(analysis_folder(), folder.analysis)
    scene = create_headless_scene()
    volumes = [add_volume_from_image(sitk.ReadImage(str(p)), f"v{i}") for i, p in enumerate(channel_paths())]
    loaded = load_analysis_into_scene(scene, folder.analysis, volumes[0], demo_model.written_labels,
                                      expected_identity=identity_of_volumes(volumes, demo_model))
    session = open_review(scene, loaded, volumes[0], folder.log)
    session.next()
    resumed, reopened, scene_file = reopen_saved_review(scene, session, tmp_path / "scene" / "review.mrml")
    resumed.close()  # its own analysis: accepted
    reopened.Clear(1)
    summary = json.loads((folder.analysis / "summary.json").read_text())
    summary["identity"]["inputs"][0]["voxels_sha256"] = "f" * 64  # as another patient's analysis would record
    (folder.analysis / "summary.json").write_text(json.dumps(summary))
    again = create_headless_scene()
    load_scene(again, str(scene_file))
    with pytest.raises(AnalysisMismatchError, match=r"input 1 \(FLAIR\): other voxel values"):
        resume_review_from_scene(again)
    again.Clear(1)


def test_iwuo_review_refuses_another_cases_analysis_with_exit_2(other_case, tmp_path):
    """Through the real command line, before any server starts; nothing is written."""
    from IWUOSegmentationLib.data.self_test_case import analysis_folder

    before = sorted((p.name, p.stat().st_mtime_ns) for p in analysis_folder().iterdir())
    run = subprocess.run([sys.executable, "-m", "IWUOSegmentationLib.cli", "review", "--case", str(other_case),
                          "--analysis", str(analysis_folder()), "--out", str(tmp_path / "out"),
                          "--port", str(_free_port())], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "was not opened" in run.stderr and "other voxel values" in run.stderr, run.stderr
    assert not (tmp_path / "out").exists(), "a refused review wrote a review folder"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in analysis_folder().iterdir()) == before

    old = tmp_path / "old_analysis"  # an analysis from before identities were recorded
    shutil.copytree(analysis_folder(), old)
    summary = json.loads((old / "summary.json").read_text())
    del summary["identity"]
    (old / "summary.json").write_text(json.dumps(summary))
    run = subprocess.run([sys.executable, "-m", "IWUOSegmentationLib.cli", "review", "--case", str(other_case),
                          "--analysis", str(old), "--out", str(tmp_path / "out"), "--port", str(_free_port())],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "older version" in run.stderr and "Analyse the case again" in run.stderr, run.stderr


def test_iwuo_review_accepts_the_same_case_again(demo_model, tmp_path):
    from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, analysis_folder
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case = prepare_review_case(ReviewRequest([str(CASE_FOLDER)], None, str(tmp_path / "out"), str(analysis_folder())))
    assert case.analysis_dir == analysis_folder() and case.identity == _identity_of_files(CASE_FOLDER, demo_model)


def test_browser_app_start_refuses_another_cases_analysis(demo_model, other_case, tmp_path):
    """A ReviewCase built by hand (not by `iwuo review`'s preparation): the app's own start path refuses it."""
    pytest.importorskip("trame_slicer")
    from IWUOSegmentationLib.data.analysis_identity import AnalysisMismatchError
    from IWUOSegmentationLib.data.self_test_case import analysis_folder
    from IWUOSegmentationLib.review.folder import ReviewFolder
    from IWUOSegmentationLib.review.preparation import ReviewCase
    from IWUOSegmentationLib.web.review_app import ReviewApp

    images = [sitk.ReadImage(str(other_case / f"{c}.nii.gz")) for c in demo_model.channel_names]
    case = ReviewCase(name="other", images=images, channel_names=demo_model.channel_names,
                      written_labels=demo_model.written_labels, analysis_dir=analysis_folder(),
                      folder=ReviewFolder(tmp_path / "review"), identity=_identity_of_files(other_case, demo_model))
    with pytest.raises(AnalysisMismatchError, match="other voxel values"):
        ReviewApp(case)
    assert not (tmp_path / "review" / "review.budget.jsonl").exists()
    assert np.all([not p.name.startswith("corrected") for p in (tmp_path).rglob("*")])


def test_volume_node_identity_equals_the_files_for_an_oblique_grid(mrml_scene):
    """The desktop hashes volume nodes (RAS), the command line files (LPS): one identity for one image."""
    from IWUOSegmentationLib.data.analysis_identity import identity_differences, sitk_image_identity
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, volume_identity

    image = sitk.GetImageFromArray(np.random.default_rng(3).normal(size=(5, 6, 7)).astype(np.float32))
    image.SetSpacing((0.9, 1.1, 3.0))
    image.SetOrigin((12.5, -40.0, 7.25))
    angle = np.deg2rad(20)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0))
    from_file = sitk_image_identity(image, "FLAIR")
    from_node = volume_identity(add_volume_from_image(image, "FLAIR"), "FLAIR")
    assert identity_differences({"inputs": [from_file]}, [from_node]) == []
    moved = sitk.Image(image)
    moved.SetOrigin((12.5, -40.0, 9.25))
    assert identity_differences({"inputs": [from_file]}, [volume_identity(add_volume_from_image(moved, "x"))]) \
        == ["input 1 (FLAIR): origin (12.5, -40, 7.25) in the analysis, (12.5, -40, 9.25) here"]
