"""Learning from corrections: review folders -> `iwuo export-dataset` -> `iwuo train` (fine-tune) -> `iwuo analyze`.

The review folders are made the way both front ends make them: `iwuo review`'s preparation
(analysis with the bundled model, inputs kept) and a review session on a real MRML scene
(slicer-core) whose segmentation is edited through the segmentation node.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.cli import main
from IWUOSegmentationLib.errors import BadInputError


def _prepare(case_dir, out):
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    return prepare_review_case(ReviewRequest([str(case_dir)], None, str(out), settings=AnalysisSettings(device="cpu", tta=False)))


def _review(case, edit_slices=(), rows=slice(10, 14), cols=slice(10, 15)):
    """Open the review session, add a box to the first segment on each of `edit_slices`, flush, close."""
    import slicer.util

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_session import SessionOptions
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review

    scene = create_headless_scene()
    volume = add_volume_from_image(case.images[0], "FLAIR")
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels,
                                      expected_identity=case.identity)
    session = open_review(scene, loaded, volume, case.folder.log, SessionOptions(lock=case.lock))
    segment_id = next(iter(loaded.labels))
    for s in edit_slices:
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded.segmentation, segment_id, volume) > 0
        mask[s, rows, cols] = True
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), loaded.segmentation, segment_id, volume)
        session.flush_edits()
    session.close()
    scene.Clear(1)


@pytest.fixture(scope="module")
def reviews(phantom_cases, tmp_path_factory):
    """Two review folders: one corrected on two slices, one opened but left as predicted."""
    root = tmp_path_factory.mktemp("reviews")
    cases = sorted(p for p in phantom_cases.iterdir() if p.is_dir())
    corrected = _prepare(cases[0], root / "corrected")
    _review(corrected, edit_slices=(5, 9))
    untouched = _prepare(cases[1], root / "untouched")
    _review(untouched)
    return {"corrected": corrected, "untouched": untouched, "cases": cases}


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _copy_review(review, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(review.folder.root, target)
    return target


def test_a_review_keeps_its_input_images(reviews):
    case = reviews["corrected"]
    saved = case.folder.input_images()
    assert [p.name for p in saved] == ["input_0000.nii.gz", "input_0001.nii.gz"]
    for path, original in zip(saved, ("FLAIR", "T1c")):
        assert path.read_bytes() == (reviews["cases"][0] / f"{original}.nii.gz").read_bytes()


def test_export_dataset_writes_the_corrected_cases_in_the_models_convention(reviews, demo_model, tmp_path, capsys):
    from IWUOSegmentationLib.nnunet.training import check_raw_dataset

    corrected, untouched = reviews["corrected"], reviews["untouched"]
    out = tmp_path / "Dataset951_Corrected"
    code = main(["--progress", "none", "export-dataset", "--reviews", str(corrected.folder.root),
                 str(untouched.folder.root), "--model", str(demo_model.path), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert [c["name"] for c in result["cases"]] == ["corrected"] and result["cases"][0]["corrected_slices"] == 2
    assert "untouched" in result["skipped"][0]["review"] and "--include-uncorrected" in captured.err
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == demo_model.dataset_json["channel_names"]
    assert ds["labels"] == demo_model.dataset_json["labels"]
    assert ds["regions_class_order"] == demo_model.dataset_json["regions_class_order"] and ds["numTraining"] == 1
    label = _array(out / "labelsTr" / "corrected.nii.gz")
    assert np.array_equal(label, _array(corrected.folder.corrected))
    prediction = _array(corrected.analysis_dir / "segmentation.nii.gz")
    changed = np.flatnonzero((label != prediction).any(axis=(1, 2))).tolist()
    assert changed == [5, 9], "the exported label is not the corrected segmentation"
    assert np.array_equal(_array(out / "imagesTr" / "corrected_0001.nii.gz"),
                          _array(reviews["cases"][0] / "T1c.nii.gz"))
    check_raw_dataset(out, demo_model.dataset_json)
    assert not list(tmp_path.glob(".*partial*"))


def test_a_review_of_a_folder_of_reviews_and_uncorrected_cases_on_request(reviews, tmp_path):
    from IWUOSegmentationLib.review.corrected_dataset import export_reviews

    parent = reviews["corrected"].folder.root.parent
    result = export_reviews([parent], tmp_path / "Dataset952_All", include_uncorrected=True)
    assert sorted(c["name"] for c in result.cases) == ["corrected", "untouched"]
    exported = _array(tmp_path / "Dataset952_All" / "labelsTr" / "untouched.nii.gz")
    assert np.array_equal(exported, _array(reviews["untouched"].analysis_dir / "segmentation.nii.gz"))
    with pytest.raises(BadInputError, match="None of the 1 review"):
        export_reviews([reviews["untouched"].folder.root], tmp_path / "Dataset953_None")
    assert not (tmp_path / "Dataset953_None").exists()
    with pytest.raises(BadInputError, match="already exists"):
        export_reviews([parent], tmp_path / "Dataset952_All")


def test_unlogged_corrections_are_refused(reviews, tmp_path, capsys):
    folder = _copy_review(reviews["untouched"], tmp_path)
    prediction_file = reviews["untouched"].analysis_dir / "segmentation.nii.gz"
    array = _array(prediction_file)
    array[7, 20:24, 20:24] = 4  # saved, but no log line (a crash between saving and logging)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(sitk.ReadImage(str(prediction_file)))
    sitk.WriteImage(image, str(folder / "corrected_segmentation.nii.gz"))
    out = tmp_path / "Dataset954_X"
    assert main(["--progress", "none", "export-dataset", "--reviews", str(folder), "--out", str(out),
                 "--include-uncorrected"]) == 2
    err = capsys.readouterr().err
    assert "slice(s) 7 differ from the prediction but the budget log has no correction" in err
    assert not out.exists()


def test_logged_corrections_without_the_saved_segmentation_are_refused(reviews, tmp_path):
    from IWUOSegmentationLib.review.corrected_dataset import export_reviews

    folder = _copy_review(reviews["corrected"], tmp_path)
    (folder / "corrected_segmentation.nii.gz").unlink()
    with pytest.raises(BadInputError, match="counts 2 corrected slice.*missing"):
        export_reviews([folder], tmp_path / "Dataset955_X")


def test_a_review_without_inputs_or_of_another_model_is_refused(reviews, demo_model, tmp_path):
    from IWUOSegmentationLib.review.corrected_dataset import export_reviews

    folder = _copy_review(reviews["corrected"], tmp_path)
    shutil.rmtree(folder / "inputs")  # a review begun before inputs were kept: the analysed files, where they are
    assert export_reviews([folder], tmp_path / "Dataset956_X").cases[0]["corrected_slices"] == 2
    summary_file = folder / "analysis" / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["inputs"] = [str(tmp_path / "moved" / "FLAIR.nii.gz"), str(tmp_path / "moved" / "T1c.nii.gz")]
    summary_file.write_text(json.dumps(summary))
    with pytest.raises(BadInputError, match="no saved input images"):
        export_reviews([folder], tmp_path / "Dataset963_X")
    dropout_model = demo_model.path.parent / "IWUOTrainer__nnUNetPlans__3d_fullres_dropout"
    other = tmp_path / "other_model"
    shutil.copytree(dropout_model, other / dropout_model.name)
    ds_file = other / dropout_model.name / "dataset.json"
    ds = json.loads(ds_file.read_text())
    ds["channel_names"] = {"0": "T1c", "1": "FLAIR"}
    ds_file.write_text(json.dumps(ds))
    with pytest.raises(BadInputError, match="channels are \\['FLAIR', 'T1c'\\], not \\['T1c', 'FLAIR'\\]"):
        export_reviews([reviews["corrected"].folder.root], tmp_path / "Dataset957_X", model_path=str(other))


def test_review_report_says_whether_the_case_is_training_data(reviews, tmp_path):
    from IWUOSegmentationLib.review.report import write_review_report

    report = write_review_report(reviews["corrected"].folder.log, tmp_path / "r1").read_text()
    assert "## Training data" in report and "Ready for training: 2 corrected slice(s)" in report
    assert "iwuo export-dataset --reviews" in report
    report = write_review_report(reviews["untouched"].folder.log, tmp_path / "r2").read_text()
    assert "No correction yet" in report


# -- iwuo train: folds, few cases, pretrained plans (checks that run before nnU-Net) ----------------------------


def test_few_cases_get_leave_one_out_splits(tmp_path):
    from IWUOSegmentationLib.nnunet.training import write_small_splits

    text = write_small_splits(tmp_path, ["a", "b", "c"], [0, 2, "all"])
    splits = json.loads((tmp_path / "splits_final.json").read_text())
    assert [s["val"] for s in splits] == [["a"], ["b"], ["c"]] and splits[1]["train"] == ["a", "c"]
    assert "leave-one-out" in text
    assert write_small_splits(tmp_path / "one", ["a"], [0]).startswith("1 case")
    assert json.loads((tmp_path / "one" / "splits_final.json").read_text()) == [{"train": ["a"], "val": ["a"]}]
    assert write_small_splits(tmp_path / "all", ["a", "b"], ["all"]) is None
    assert write_small_splits(tmp_path / "five", list("abcde"), [0]) is None
    with pytest.raises(BadInputError, match="Fold 3 does not exist with 3 case"):
        write_small_splits(tmp_path / "x", ["a", "b", "c"], [3])


def test_folds_all_is_accepted_and_bad_folds_refused(capsys):
    from IWUOSegmentationLib.cli import build_parser

    args = build_parser().parse_args(["train", "--dataset", "d", "--work", "w", "--folds", "0", "all"])
    assert args.folds == [0, "all"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "d", "--work", "w", "--folds", "first"])
    assert "a fold is a number (0, 1, ...) or all" in capsys.readouterr().err


def test_pretrained_model_folder_gives_its_plans_and_checkpoint(demo_model, tmp_path):
    from IWUOSegmentationLib.nnunet.training import move_plans, plans_identifier_from, resolve_pretrained

    pretrained = resolve_pretrained(demo_model.path)
    assert pretrained.checkpoint == demo_model.path / "fold_0" / "checkpoint_final.pth"
    assert pretrained.configuration == "3d_fullres"
    assert resolve_pretrained(demo_model.path / "fold_1").checkpoint.parent.name == "fold_1"
    # a checkpoint outside its model folder: plans and dataset.json from the checkpoint itself
    loose = tmp_path / "loose.pth"
    shutil.copy(pretrained.checkpoint, loose)
    from_file = resolve_pretrained(loose)
    assert from_file.plans["configurations"]["3d_fullres"]["spacing"] == [2.0, 2.0, 2.0]
    raw = tmp_path / "Dataset958_Target"
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps(demo_model.dataset_json))
    name = plans_identifier_from(pretrained)
    assert name == "nnUNetPlansFrom900"
    plans = json.loads(move_plans(pretrained, raw, tmp_path / "pre", name).read_text())
    config = plans["configurations"]["3d_fullres"]
    bundled = demo_model.plans["configurations"]["3d_fullres"]
    assert plans["dataset_name"] == "Dataset958_Target" and plans["plans_name"] == name
    assert config["data_identifier"] == "nnUNetPlansFrom900_3d_fullres"
    for key in ("spacing", "patch_size", "normalization_schemes", "architecture"):
        assert config[key] == bundled[key], key


def test_the_fine_tune_starts_from_every_pretrained_tensor(demo_model, tmp_path, monkeypatch):
    """The trainer `iwuo train --pretrained-weights` builds for a dataset of the model's own labels (its plans moved
    as train() moves them, the child's own arguments) holds the checkpoint's tensors, the output layers included,
    tensor by tensor, and its record says "all layers"; a network as nnU-Net initialises it differs from them."""
    import torch

    from IWUOSegmentationLib.nnunet.inference import _build_network
    from IWUOSegmentationLib.nnunet.model_folder import load_checkpoint
    from IWUOSegmentationLib.nnunet.trainer import IWUOTrainer, build_parser, prepare_trainer
    from IWUOSegmentationLib.nnunet.training import move_plans, plans_identifier_from, resolve_pretrained

    pretrained = resolve_pretrained(demo_model.path)
    raw = tmp_path / "raw" / "Dataset964_Transfer"
    raw.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps(demo_model.dataset_json))
    preprocessed = tmp_path / "preprocessed" / raw.name
    preprocessed.mkdir(parents=True)
    shutil.copy2(raw / "dataset.json", preprocessed / "dataset.json")
    plans_name = plans_identifier_from(pretrained)
    plans = json.loads(move_plans(pretrained, raw, preprocessed, plans_name).read_text())
    # nnU-Net's initialize() picks its dataset class from the file endings of the preprocessed data; none is read
    data = preprocessed / plans["configurations"][pretrained.configuration]["data_identifier"]
    data.mkdir()
    (data / "case.b2nd").touch()
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_compile", "f")
    trainer, record = prepare_trainer(build_parser().parse_args(
        ["--dataset", raw.name, "--configuration", pretrained.configuration, "--fold", "all", "--plans", plans_name,
         "--epochs", "1", "--iterations", "1", "--pretrained-weights", str(pretrained.checkpoint)]))
    weights = load_checkpoint(pretrained.checkpoint)["network_weights"]
    started = trainer.network.state_dict()
    assert record["transferred"] == "all layers" and set(started) == set(weights)
    assert any(".seg_layers." in k for k in started)
    not_transferred = [k for k in started if not torch.equal(started[k], weights[k])]
    assert not not_transferred, f"{len(not_transferred)} tensors are not the checkpoint's, e.g. {not_transferred[:3]}"
    fresh = _build_network(IWUOTrainer, trainer.plans_manager, trainer.configuration_manager,
                           trainer.num_input_channels, trainer.label_manager.num_segmentation_heads).state_dict()
    convolutions = [k for k in fresh if k.endswith(".weight") and fresh[k].ndim == 5]
    assert all(not torch.equal(fresh[k], weights[k]) for k in convolutions), "the check could not see a missed transfer"


def test_fine_tune_checks_before_nnunet_starts(tmp_path, demo_model, capsys):
    from IWUOSegmentationLib.data.phantom import write_phantoms

    raw = write_phantoms(tmp_path / "raw", 1, seed=70, layout="nnunet", dataset_name="Dataset959_One")
    base = ["--progress", "none", "train", "--dataset", str(raw), "--work", str(tmp_path / "w"),
            "--pretrained-weights", str(demo_model.path)]
    assert main([*base, "--features", "4", "8"]) == 2
    assert "a fine-tune keeps the pretrained model's network" in capsys.readouterr().err
    ds = json.loads((raw / "dataset.json").read_text())
    ds["channel_names"] = {"0": "FLAIR"}
    (raw / "dataset.json").write_text(json.dumps(ds))
    (raw / "imagesTr" / "phantom_0070_0001.nii.gz").unlink()
    assert main(base) == 2
    assert "the pretrained model takes 2 (FLAIR, T1c)" in capsys.readouterr().err
    assert not (tmp_path / "w" / "preprocessed").exists(), "nnU-Net was started on a dataset that cannot work"


def test_extra_channel_images_are_named(tmp_path):
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.nnunet.training import check_raw_dataset

    raw = write_phantoms(tmp_path / "raw", 1, seed=71, layout="nnunet", dataset_name="Dataset960_Extra")
    shutil.copy(raw / "imagesTr" / "phantom_0071_0001.nii.gz", raw / "imagesTr" / "phantom_0071_0002.nii.gz")
    with pytest.raises(BadInputError, match="image for channel 2 .* dataset.json names 2 channel"):
        check_raw_dataset(raw)


# -- real nnU-Net runs ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_three_cases_train_numbered_fold_and_all(tmp_path):
    """`iwuo train` on 3 cases from scratch: fold 0 (leave-one-out split) and fold all, tiny network."""
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    raw = write_phantoms(tmp_path / "raw", 3, seed=72, layout="nnunet", dataset_name="Dataset961_Three",
                         spacing=(4.0, 4.0, 4.0), region_based=False)
    code = main(["--progress", "none", "train", "--dataset", str(raw), "--work", str(tmp_path / "work"),
                 "--folds", "0", "all", "--epochs", "1", "--iterations", "2", "--features", "4", "8", "16",
                 "--patch-size", "32", "32", "32", "--no-final-validation"])
    assert code == 0
    model = open_model(tmp_path / "work" / "results" / "Dataset961_Three" / "IWUOTrainer__nnUNetPlans__3d_fullres")
    assert model.folds == ["0", "all"]
    splits = json.loads((tmp_path / "work" / "preprocessed" / "Dataset961_Three" / "splits_final.json").read_text())
    assert len(splits) == 3 and all(len(s["train"]) == 2 for s in splits)
    record = json.loads((model.path / "fold_all" / "iwuo_training.json").read_text())
    assert record["final_validation"] is False and record["epochs"] == 1
    assert not (model.path / "fold_0" / "validation").exists()


@pytest.mark.slow
def test_reviews_export_fine_tune_in_pretrained_plans_then_analyze(reviews, demo_model, tmp_path, capsys):
    """review folders -> export-dataset -> iwuo train --pretrained-weights (bundled model) -> iwuo analyze."""
    out = tmp_path / "raw" / "Dataset962_FineTune"
    assert main(["--progress", "none", "export-dataset", "--reviews", str(reviews["corrected"].folder.root),
                 str(reviews["untouched"].folder.root), "--out", str(out), "--include-uncorrected"]) == 0
    capsys.readouterr()
    code = main(["--progress", "none", "train", "--dataset", str(out), "--work", str(tmp_path / "work"),
                 "--folds", "all", "--epochs", "1", "--iterations", "2", "--pretrained-weights", str(demo_model.path),
                 "--no-final-validation"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    model_dir = tmp_path / "work" / "results" / "Dataset962_FineTune" / "IWUOTrainer__nnUNetPlansFrom900__3d_fullres"
    assert result["model_folder"] == str(model_dir) and result["training"]["all"]["transferred"] == "all layers"
    plans = json.loads((model_dir / "plans.json").read_text())["configurations"]["3d_fullres"]
    bundled = demo_model.plans["configurations"]["3d_fullres"]
    assert plans["spacing"] == bundled["spacing"] and plans["architecture"] == bundled["architecture"]
    case = reviews["cases"][2]
    code = main(["--progress", "none", "analyze", "--model", str(model_dir), "--input", str(case / "FLAIR.nii.gz"),
                 str(case / "T1c.nii.gz"), "--output", str(tmp_path / "analysis"), "--device", "cpu",
                 "--disable-tta"])
    assert code == 0
    seg = _array(tmp_path / "analysis" / "segmentation.nii.gz")
    assert seg.shape == _array(case / "FLAIR.nii.gz").shape and seg.any()


def test_the_modules_export_picks_a_free_dataset_id(tmp_path):
    from IWUOSegmentationLib.review.corrected_dataset import next_dataset_folder

    assert next_dataset_folder(tmp_path) == tmp_path / "Dataset501_IWUOCorrected"
    (tmp_path / "Dataset501_IWUOCorrected").mkdir()
    (tmp_path / "Dataset502_Other").mkdir()
    assert next_dataset_folder(tmp_path).name == "Dataset503_IWUOCorrected"
