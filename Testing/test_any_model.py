"""Any nnU-Net v2 model: review targets and evaluation regions come from the model's dataset.json.

The first tests use hand-made analyses (known probabilities, so the right answer is known) of a
non-tumour label model and of a BraTS 2023 model, on real MRML (slicer-core) and through
`iwuo evaluate`'s per-case code. The slow tests train real nnU-Net models here with `iwuo train`
(a BraTS-2023-convention label model and a brain-tissue model) and run the whole path on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.data.analysis_files import UNCERTAINTY_MAPS, write_analysis
from IWUOSegmentationLib.errors import BadInputError
from IWUOSegmentationLib.nnunet.inference import AnalysisResult, CaseImages
from IWUOSegmentationLib.nnunet.model_folder import ModelFolder
from IWUOSegmentationLib.simulation.evaluation_config import EvaluationConfig

PROSTATE = {"channel_names": {"0": "T2"}, "labels": {"background": 0, "PZ": 1, "TZ": 2}, "file_ending": ".nii.gz"}
BRATS2023 = {"channel_names": {"0": "FLAIR", "1": "T1c"}, "labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 3},
             "file_ending": ".nii.gz"}
SHAPE = (10, 16, 16)


def _model(dataset_json: dict, path: Path) -> ModelFolder:
    """The model description evaluation and review read (its dataset.json); no network is run on these cases.
    Its files exist (a placeholder checkpoint) because an analysis records the model's file hashes."""
    (path / "fold_0").mkdir(parents=True, exist_ok=True)
    (path / "dataset.json").write_text(json.dumps(dataset_json))
    plans = {"configurations": {"3d_fullres": {}}}
    (path / "plans.json").write_text(json.dumps(plans))
    (path / "fold_0" / "checkpoint_final.pth").write_bytes(b"no network: these tests run no inference")
    return ModelFolder(path=path, dataset_json=dataset_json, plans=plans, configuration="3d_fullres", folds=["0"],
                       checkpoint_name="checkpoint_final.pth")


def _write_case_analysis(out: Path, dataset_json: dict, label_map: np.ndarray, probabilities: np.ndarray) -> Path:
    """An analysis folder as `iwuo analyze` writes it, from known label map and softmax probabilities."""
    labels = dataset_json["labels"]
    names = [n for n, _ in sorted(labels.items(), key=lambda kv: kv[1])]
    entropy = -(probabilities * np.log(np.clip(probabilities, 1e-9, 1))).sum(0).astype(np.float32)
    maps = {m: entropy for m in UNCERTAINTY_MAPS}
    maps["member_variance"] = np.zeros_like(probabilities)
    result = AnalysisResult(label_map=label_map.astype(np.uint8), probabilities=probabilities, uncertainty=maps,
                            output_names=names, region_based=False, members={"kinds": ["flips"]}, seconds=0.0)
    case = CaseImages(arrays=[np.zeros(SHAPE, np.float32)], spacing=(1.0, 1.0, 1.0))
    return write_analysis(result, case, out, _model(dataset_json, out.parent / "model").describe())


def _recorded_identity(analysis_folder: Path) -> dict:
    """The identity a hand-written analysis recorded (these tests are about structures, not the identity rule)."""
    from IWUOSegmentationLib.data.analysis_identity import read_summary

    return read_summary(analysis_folder)["identity"]


def _prostate_case() -> tuple[np.ndarray, np.ndarray]:
    """PZ uncertain on slice 2, TZ uncertain on slice 7, both certain elsewhere."""
    label_map = np.zeros(SHAPE, np.uint8)
    probs = np.zeros((3, *SHAPE), np.float32)
    probs[0] = 1.0
    for value, uncertain in ((1, 2), (2, 7)):
        for k in (uncertain - 1, uncertain, uncertain + 1):
            label_map[k, 3:12, 3:12] = value
            probs[:, k, 3:12, 3:12] = 0.0
            probs[value, k, 3:12, 3:12] = 1.0
        probs[value, uncertain, 3:12, 7:12] = 0.55
        probs[0, uncertain, 3:12, 7:12] = 0.45
    return label_map, probs


def test_label_model_reviewed_on_a_chosen_structure(mrml_scene, tmp_path):
    """A prostate-like label model (PZ, TZ): ranking, impact overlay and log follow the chosen target."""
    import slicer.util

    from IWUOSegmentationLib.mrml.review_session import SessionOptions
    from IWUOSegmentationLib.mrml.review_workflow import (
        add_volume_from_image,
        load_analysis_into_scene,
        open_review,
        review_targets,
        show_target_impact,
    )
    from IWUOSegmentationLib.review.budget_log import BudgetLog
    from IWUOSegmentationLib.review.folder import ReviewFolder

    label_map, probs = _prostate_case()
    folder = ReviewFolder(tmp_path / "review")
    _write_case_analysis(folder.analysis, PROSTATE, label_map, probs)
    volume = add_volume_from_image(CaseImages(arrays=[np.zeros(SHAPE, np.float32)], spacing=(1, 1, 1)).to_image(
        np.zeros(SHAPE, np.float32)), "T2")
    loaded = load_analysis_into_scene(mrml_scene, folder.analysis, volume, PROSTATE["labels"], target="TZ",
                                      expected_identity=_recorded_identity(folder.analysis))
    assert review_targets(loaded.analysis) == ["all foreground", "PZ", "TZ"]
    segmentation = loaded.segmentation.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["PZ", "TZ"]
    colours = {tuple(round(c, 3) for c in segmentation.GetNthSegment(i).GetColor()) for i in range(2)}
    assert len(colours) == 2, "each structure has its own colour"
    impact = slicer.util.arrayFromVolume(loaded.overlays["impact"])
    assert impact[7].max() > 0.4 and impact[2].max() == 0.0, "the impact overlay shows the TZ target only"

    session = open_review(mrml_scene, loaded, volume, folder.log, SessionOptions(target="tz"))
    assert session.target == "TZ" and session.ranking[0] == 7
    started = [e for e in BudgetLog(folder.log).read() if e["kind"] == "session_started"]
    assert started[0]["target"] == "TZ"
    session.close()

    # another target re-ranks; the log records the change, and a resumed review keeps it
    session = open_review(mrml_scene, loaded, volume, folder.log, SessionOptions(target="PZ"))
    show_target_impact(loaded.overlays["impact"], loaded.analysis, session.target)
    assert session.ranking[0] == 2 and slicer.util.arrayFromVolume(loaded.overlays["impact"])[7].max() == 0.0
    session.close()
    resumed = open_review(mrml_scene, loaded, volume, folder.log)
    assert resumed.target == "PZ" and resumed.ranking[0] == 2
    events = BudgetLog(folder.log).read()
    assert [e["target"] for e in events if e["kind"] == "target_changed"] == ["PZ"]
    resumed.close()
    from IWUOSegmentationLib.review.report import write_review_report

    assert "| review target | TZ → PZ |" in write_review_report(folder.log).read_text()
    with pytest.raises(BadInputError, match="no structure 'prostate'.*all foreground, PZ, TZ"):
        open_review(mrml_scene, loaded, volume, folder.log, SessionOptions(target="prostate"))


def test_browser_app_offers_and_changes_the_review_target(tmp_path):
    """The browser app's target selector (its state and trigger), in-process without a browser."""
    pytest.importorskip("trame_slicer")
    from IWUOSegmentationLib.review.budget_log import BudgetLog
    from IWUOSegmentationLib.review.folder import ReviewFolder
    from IWUOSegmentationLib.review.preparation import ReviewCase
    from IWUOSegmentationLib.web.review_app import ReviewApp

    folder = ReviewFolder(tmp_path / "review")
    _write_case_analysis(folder.analysis, PROSTATE, *_prostate_case())
    image = CaseImages(arrays=[np.zeros(SHAPE, np.float32)], spacing=(1, 1, 1)).to_image(np.zeros(SHAPE, np.float32))
    case = ReviewCase(name="prostate", images=[image], channel_names=["T2"], written_labels=PROSTATE["labels"],
                      analysis_dir=folder.analysis, folder=folder, identity=_recorded_identity(folder.analysis),
                      target="TZ")
    app = ReviewApp(case, budget_slices=5)
    assert app.state.iwuo_targets == ["all foreground", "PZ", "TZ"] and app.state.iwuo_target == "TZ"
    assert app.state.iwuo_rows[0]["slice"] == 7
    app.set_target("PZ")
    assert app.state.iwuo_target == "PZ" and app.state.iwuo_rows[0]["slice"] == 2
    assert [(e["kind"], e.get("target")) for e in BudgetLog(folder.log).read()] == [
        ("session_started", "TZ"), ("target_changed", "PZ")]
    app.save_now()


def _brats2023_case(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A BraTS 2023 case folder (-t2f, -t1c, -seg) and a prediction that misses part of ET (label 3)."""
    reference = np.zeros(SHAPE, np.uint8)
    reference[2:8, 3:13, 3:13] = 2
    reference[3:7, 5:11, 5:11] = 3
    reference[4:6, 7:9, 7:9] = 1
    prediction = reference.copy()
    prediction[3:5][prediction[3:5] == 3] = 2  # ET on slices 3-4 called oedema
    probs = np.zeros((4, *SHAPE), np.float32)
    for value in range(4):
        probs[value] = 0.9 * (prediction == value) + 0.1 / 3 * (prediction != value)
    folder = tmp_path / "BraTS-GLI-00001-000"
    folder.mkdir()
    image = CaseImages(arrays=[np.zeros(SHAPE, np.float32)], spacing=(1.0, 1.0, 1.0))
    for suffix in ("t2f", "t1c", "t1n"):
        sitk.WriteImage(image.to_image(np.random.default_rng(0).random(SHAPE).astype(np.float32)),
                        str(folder / f"{folder.name}-{suffix}.nii.gz"))
    sitk.WriteImage(image.to_image(reference), str(folder / f"{folder.name}-seg.nii.gz"))
    return folder, reference, prediction


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum())) if a.any() or b.any() else 1.0


def test_evaluate_brats2023_case_scores_et_on_label_3(tmp_path):
    """`iwuo evaluate`'s per-case step on a BraTS 2023 folder: files found by their 2023 names, WT/TC/ET in 2023
    labels (on today's main ET was label 4: empty in both, Dice 1)."""
    from IWUOSegmentationLib.simulation.evaluate_folders import evaluate_folder_case

    folder, reference, prediction = _brats2023_case(tmp_path)
    probs = np.stack([0.9 * (prediction == v) + 0.1 / 3 * (prediction != v) for v in range(4)]).astype(np.float32)
    out_case = tmp_path / "out" / folder.name
    _write_case_analysis(out_case / "analysis", BRATS2023, prediction, probs)
    options = EvaluationConfig(strategies=("iwuo", "random", "oracle"), experts=("perfect",), regions=("auto",),
                               random_seeds=2)
    record = evaluate_folder_case(folder, _model(BRATS2023, tmp_path), None, out_case, options)
    assert record["label_convention"] == "brats2023"
    assert record["regions"]["ET"] == {"structure": "ET", "reference_values": [3]}
    metrics = record["metrics_before_correction"]
    for region, values in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
        assert metrics[region]["dice"] == pytest.approx(_dice(np.isin(prediction, values), np.isin(reference, values)))
    assert metrics["ET"]["dice"] < 0.8
    oracle = [r for r in record["rows"] if r["region"] == "ET" and r["strategy"] == "oracle"][0]
    assert oracle["dice_after_all"] == 1.0

    # the same reference read as BraTS 2021 (ET = 4): label 3 is not a 2021 label, and the error names it
    out_2021 = tmp_path / "out2021" / folder.name
    _write_case_analysis(out_2021 / "analysis", BRATS2023, prediction, probs)
    with pytest.raises(BadInputError, match=r"label values \[3\].*BraTS 2017-2021"):
        evaluate_folder_case(folder, _model(BRATS2023, tmp_path), None, out_2021,
                             options.with_options(label_convention="brats2021"))


def test_evaluate_refuses_labels_the_model_does_not_have(tmp_path):
    from IWUOSegmentationLib.simulation.evaluate_folders import evaluate_folder_case

    folder, reference, prediction = _brats2023_case(tmp_path)
    reference[0, 0, 0] = 7
    sitk.WriteImage(CaseImages(arrays=[reference], spacing=(1, 1, 1)).to_image(reference),
                    str(folder / f"{folder.name}-seg.nii.gz"))
    probs = np.stack([(prediction == v) for v in range(4)]).astype(np.float32)
    out_case = tmp_path / "out" / folder.name
    _write_case_analysis(out_case / "analysis", BRATS2023, prediction, probs)
    options = EvaluationConfig(strategies=("iwuo",), experts=("perfect",), regions=("auto",), random_seeds=1)
    with pytest.raises(BadInputError, match=r"reference has label values \[7\].*1 NCR, 2 ED, 3 ET"):
        evaluate_folder_case(folder, _model(BRATS2023, tmp_path), None, out_case, options)


def test_review_target_is_checked_against_the_model_before_anything_runs(tmp_path, capsys):
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    code = main(["--progress", "none", "review", "--case", str(tmp_path / "nowhere"), "--target", "liver",
                 "--port", "18931", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no structure 'liver'; choose one of: whole_tumor, tumor_core, enhancing_tumor" in capsys.readouterr().err
    with pytest.raises(BadInputError, match="Case image.s. not found"):  # ET is the demo model's enhancing_tumor
        prepare_review_case(ReviewRequest([str(tmp_path / "nowhere")], review_folder=str(tmp_path / "out"), target="ET"))


def test_phantoms_in_brats2023_labels_and_names_and_tissue_phantoms(tmp_path):
    from IWUOSegmentationLib.cli import main

    assert main(["--progress", "none", "phantom", "--out", str(tmp_path / "b23"), "--n", "1", "--seed", "3",
                 "--spacing", "4,4,4", "--label-convention", "brats2023"]) == 0
    folder = tmp_path / "b23" / "phantom_0003"
    assert sorted(p.name for p in folder.glob("phantom_0003-*")) == ["phantom_0003-seg.nii.gz",
                                                                     "phantom_0003-t1c.nii.gz",
                                                                     "phantom_0003-t2f.nii.gz"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "phantom_0003-seg.nii.gz")))
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
    flair = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "phantom_0003-t2f.nii.gz")))
    assert flair[label == 2].mean() > flair[(label == 0) & (flair != 0)].mean() + 0.8  # oedema is FLAIR-bright

    assert main(["--progress", "none", "phantom", "--out", str(tmp_path / "tissue"), "--n", "1", "--kind", "tissue",
                 "--layout", "nnunet", "--spacing", "4,4,4"]) == 0
    root = tmp_path / "tissue" / "Dataset900_IWUOPhantom"
    assert json.loads((root / "dataset.json").read_text())["labels"] == {"background": 0, "csf": 1, "grey_matter": 2,
                                                                         "white_matter": 3}
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr" / "tissue_0000.nii.gz")))
    t1 = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "imagesTr" / "tissue_0000_0000.nii.gz")))
    assert t1[label == 3].mean() > t1[label == 2].mean() > t1[label == 1].mean()


# -- real nnU-Net models trained here (slow: planning, preprocessing, training and nnU-Net's validation) --------

def _train(tmp_path_factory, name: str, **phantom_options) -> Path:
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.data.phantom import write_phantoms

    root = tmp_path_factory.mktemp(name)
    raw = write_phantoms(root / "raw", 5, seed=50, layout="nnunet", dataset_name=name, spacing=(4.0, 4.0, 4.0),
                         **phantom_options)
    code = main(["--progress", "none", "train", "--dataset", str(raw), "--work", str(root / "work"), "--folds", "0",
                 "--epochs", "3", "--iterations", "10", "--features", "4", "8", "16", "--patch-size", "32", "32", "32"])
    assert code == 0
    return root / "work" / "results" / name / "IWUOTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture(scope="session")
def brats2023_model(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "Dataset905_BraTS23Phantom", region_based=False, label_convention="brats2023")


@pytest.fixture(scope="session")
def tissue_model(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "Dataset906_TissuePhantom", kind="tissue")


def _review_and_evaluate(model_path: Path, cases: Path, target: str, tmp_path: Path, scene):
    """Analysis (through `iwuo review`'s preparation), the review session on the target, and `iwuo evaluate`."""
    from IWUOSegmentationLib.cli import main
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.data.structures import structures_from_dataset_json
    from IWUOSegmentationLib.mrml.review_session import SessionOptions
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.ranking.strategies import rank_case
    from IWUOSegmentationLib.review.budget_log import BudgetLog
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case_dir = sorted(p for p in cases.iterdir() if p.is_dir())[0]
    case = prepare_review_case(ReviewRequest([str(case_dir)], str(model_path), str(tmp_path / "review"),
                                             settings=AnalysisSettings(device="cpu", tta=False), target=target))
    volume = add_volume_from_image(case.images[0], case.channel_names[0])
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels, target=case.target,
                                      expected_identity=case.identity)
    session = open_review(scene, loaded, volume, case.folder.log, SessionOptions(target=case.target))
    analysis = read_analysis(case.analysis_dir)
    structures = structures_from_dataset_json(json.loads((model_path / "dataset.json").read_text()))
    # The product's ranking (DEFAULT_RANKING) of the target's structure alone, from the dataset.json's structures.
    structure = structures.get(target)
    _, _, rows = rank_case(analysis, {structure.name: structure})
    assert session.ranking == [r["slice"] for r in rows]
    assert [e for e in BudgetLog(case.folder.log).read() if e["kind"] == "session_started"][0]["target"] == target
    seg = loaded.segmentation.GetSegmentation()
    segments = {seg.GetNthSegment(i).GetName(): seg.GetNthSegment(i).GetColor() for i in range(seg.GetNumberOfSegments())}
    session.close()

    out = tmp_path / "evaluation"
    code = main(["--progress", "none", "evaluate", "--cases", str(cases), "--model", str(model_path), "--out",
                 str(out), "--strategies", "iwuo,random,oracle", "--expert", "perfect", "--random-seeds", "2",
                 "--disable-tta", "--device", "cpu"])
    assert code == 0
    assert not list(out.glob("cases/*/error.txt"))
    return segments, out, structures


@pytest.mark.slow
def test_brats2023_label_model_trained_here_end_to_end(brats2023_model, tmp_path, mrml_scene):
    from IWUOSegmentationLib.data.phantom import write_phantoms

    cases = write_phantoms(tmp_path / "cases", 2, seed=11, layout="cases", spacing=(4.0, 4.0, 4.0),
                           label_convention="brats2023")
    assert (cases / "phantom_0011" / "phantom_0011-t2f.nii.gz").is_file()
    segments, out, _ = _review_and_evaluate(brats2023_model, cases, "ET", tmp_path, mrml_scene)
    assert list(segments) == ["NCR", "ED", "ET"]
    assert tuple(round(c, 2) for c in segments["ET"]) == (1.0, 0.85, 0.2) and segments["ED"] != segments["NCR"]
    for folder in sorted(p for p in cases.iterdir() if p.is_dir()):
        record = json.loads((out / "cases" / folder.name / "evaluation.json").read_text())
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{folder.name}-seg.nii.gz")))
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "cases" / folder.name / "analysis" /
                                                               "segmentation.nii.gz")))
        assert record["label_convention"] == "brats2023"
        for region, values in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
            assert record["metrics_before_correction"][region]["dice"] == pytest.approx(
                _dice(np.isin(prediction, values), np.isin(reference, values)))


@pytest.mark.slow
def test_tissue_model_trained_here_reviewed_on_grey_matter(tissue_model, tmp_path, mrml_scene):
    from IWUOSegmentationLib.data.phantom import write_phantoms

    cases = write_phantoms(tmp_path / "cases", 2, seed=11, layout="cases", spacing=(4.0, 4.0, 4.0), kind="tissue")
    segments, out, structures = _review_and_evaluate(tissue_model, cases, "grey_matter", tmp_path, mrml_scene)
    assert list(segments) == ["csf", "grey_matter", "white_matter"]
    assert len({tuple(c) for c in segments.values()}) == 3
    for folder in sorted(p for p in cases.iterdir() if p.is_dir()):
        record = json.loads((out / "cases" / folder.name / "evaluation.json").read_text())
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "label.nii.gz")))
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "cases" / folder.name / "analysis" /
                                                               "segmentation.nii.gz")))
        assert set(record["metrics_before_correction"]) == {"csf", "grey_matter", "white_matter", "all foreground"}
        for region, values in (("csf", (1,)), ("grey_matter", (2,)), ("white_matter", (3,)), ("all foreground", (1, 2, 3))):
            assert record["metrics_before_correction"][region]["dice"] == pytest.approx(
                _dice(np.isin(prediction, values), np.isin(reference, values)))
        assert record["label_convention"] is None
