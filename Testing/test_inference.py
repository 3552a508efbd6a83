"""Inference with members: agreement with nnU-Net, uncertainty behaviour, bad inputs, cancel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from IWUOSegmentationLib.cli import main
from IWUOSegmentationLib.data.analysis_files import read_analysis, write_analysis
from IWUOSegmentationLib.data.phantom import write_phantoms
from IWUOSegmentationLib.errors import BadInputError, CancelledError, OutOfMemoryError
from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
from IWUOSegmentationLib.nnunet.inference import CaseImages, MemberPredictor
from IWUOSegmentationLib.nnunet.model_folder import open_model


@pytest.fixture(scope="session")
def small_case(tmp_path_factory):
    """A phantom on a 3 mm grid (the model's plans use 2 mm, so nnU-Net's resampling is exercised)."""
    out = tmp_path_factory.mktemp("small")
    write_phantoms(out, 1, seed=12, layout="cases", spacing=(3.0, 3.0, 3.0))
    return out / "phantom_0012"


#: One network evaluation per fold and window: the cheap analysis for tests of behaviour, not of the members.
FOLDS_ONLY = AnalysisSettings(device="cpu", members=("folds",), tta=False)


def _case(folder) -> CaseImages:
    return CaseImages.from_files([str(folder / "FLAIR.nii.gz"), str(folder / "T1c.nii.gz")])


#: Torch threads of both sides of the agreement test: nnU-Net's predictor runs on min(nnUNet_def_n_proc, threads),
#: and a convolution's float32 sums depend on how its work is split between threads (1 vs 2 threads differ).
THREADS = 2


@pytest.fixture(scope="session")
def analysis(demo_model, small_case):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return MemberPredictor(demo_model, AnalysisSettings(device="cpu")).analyze(_case(small_case))
    finally:
        torch.set_num_threads(threads)


def test_label_map_and_probabilities_match_nnunet_predict(tmp_path, demo_model, small_case, analysis):
    """Same case, same folds, nnU-Net's own command with its default test-time mirroring, on as many threads: the
    same computation in the same precision (float32 mirror average, float16 sliding-window sum), so the same bits.
    Summing the windows in float32, or the flips in float16, moves the probabilities by up to about 1e-3."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(small_case / "FLAIR.nii.gz", inp / "case_0000.nii.gz")
    shutil.copy(small_case / "T1c.nii.gz", inp / "case_0001.nii.gz")
    code = ("import sys; from nnunetv2.inference.predict_from_raw_data import predict_entry_point_modelfolder as m; "
            "sys.argv[0] = 'nnUNetv2_predict_from_modelfolder'; m()")
    env = dict(os.environ, nnUNet_def_n_proc=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    proc = subprocess.run([sys.executable, "-c", code, "-i", str(inp), "-o", str(out), "-m", str(demo_model.path),
                           "-f", *demo_model.folds, "-device", "cpu", "--save_probabilities"],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nn_seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case.nii.gz")))
    nn_prob = np.load(out / "case.npz")["probabilities"]
    n_differ = int((nn_seg != analysis.label_map).sum())
    difference = np.abs(nn_prob - analysis.probabilities)
    print(f"voxels differing from nnUNetv2_predict: {n_differ} of {nn_seg.size}; probabilities: {difference.max():.2e} "
          f"at most, {int((difference > 0).sum())} of {difference.size} values differ")
    # The README's words: "identical label map (0 voxels differ) and probabilities (largest difference 0.0)".
    assert nn_seg.shape == analysis.label_map.shape and n_differ == 0
    assert nn_prob.shape == analysis.probabilities.shape and float(difference.max()) == 0.0


def test_members_and_maps_are_reported(demo_model, analysis):
    assert analysis.members["n_members"] == 8 * len(demo_model.folds)
    assert analysis.members["kinds"] == ["flips", "folds"]
    for name in ("variance", "entropy", "mutual_information", "disagreement"):
        m = analysis.uncertainty[name]
        assert m.shape == analysis.label_map.shape and np.isfinite(m).all() and m.min() >= 0
    assert analysis.uncertainty["disagreement"].max() <= 1.0
    assert analysis.uncertainty["variance"].max() > 0


def test_zero_spread_when_all_members_agree(small_case):
    """The same fold twice, no flips: identical members, so variance and disagreement are exactly zero."""
    model = open_model(demo_model_folder(), folds=["0", "0"])
    result = MemberPredictor(model, FOLDS_ONLY).analyze(_case(small_case))
    assert result.members["n_members"] == 2
    assert result.uncertainty["variance"].max() == 0.0
    assert result.uncertainty["disagreement"].max() == 0.0
    assert result.uncertainty["mutual_information"].max() < 1e-5


def test_uncertainty_is_higher_at_boundaries_than_inside(analysis):
    """Whole-tumour boundary vs. whole-tumour interior (its own channel), and vs. brain far from the tumour."""
    wt = analysis.label_map > 0
    assert wt.sum() > 100
    boundary = wt ^ ndimage.binary_erosion(wt)
    interior = ndimage.binary_erosion(wt, iterations=2)
    far = ~ndimage.binary_dilation(wt, iterations=3)
    assert interior.sum() > 20
    wt_variance = analysis.uncertainty["member_variance"][analysis.output_names.index("whole_tumor")]
    assert wt_variance[boundary].mean() > 2 * wt_variance[interior].mean()
    for name in ("entropy", "variance", "mutual_information", "disagreement"):
        m = analysis.uncertainty[name]
        assert m[boundary].mean() > 1.5 * m[interior].mean(), name
        assert m[boundary].mean() > 20 * m[far].mean(), name


def test_dropout_members_only_for_a_dropout_network(small_case):
    case = _case(small_case)
    only_dropout = AnalysisSettings(device="cpu", members=("dropout",), tta=False)
    plain = MemberPredictor(open_model(demo_model_folder(), folds=["0"]), only_dropout)
    result = plain.analyze(case)
    assert result.members["dropout_samples"] == 0 and "dropout" not in result.members["kinds"]
    assert any("dropout members unavailable" in n for n in result.members["notes"])
    assert result.uncertainty["variance"].max() == 0.0
    dropout = MemberPredictor(open_model(demo_model_folder(dropout=True)), replace(only_dropout, dropout_samples=3))
    result = dropout.analyze(case)
    assert result.members["dropout_samples"] == 3 and result.members["n_members"] == 4
    assert result.uncertainty["variance"].max() > 1e-4


def test_bad_inputs_get_clear_errors(tmp_path, demo_model, small_case):
    predictor = MemberPredictor(demo_model, FOLDS_ONLY)
    flair = sitk.ReadImage(str(small_case / "FLAIR.nii.gz"))
    with pytest.raises(BadInputError, match="expects 2 input images"):
        predictor.analyze(CaseImages.from_sitk([flair]))
    flat = sitk.Image(40, 40, sitk.sitkFloat32)
    with pytest.raises(BadInputError, match="2-D"):
        CaseImages.from_sitk([flat, flat])
    shifted = sitk.Image(flair)
    shifted.SetOrigin((0.0, 0.0, 100.0))
    with pytest.raises(BadInputError, match="geometry"):
        CaseImages.from_sitk([flair, shifted], ["FLAIR", "T1c"])
    case = _case(small_case)
    case.arrays[1] = case.arrays[1].copy()
    case.arrays[1][3, 4, 5] = np.nan
    with pytest.raises(BadInputError, match="1 NaN"):
        predictor.analyze(case)


def test_cancel_writes_nothing(tmp_path, demo_model, small_case, monkeypatch):
    calls = {"n": 0}

    def cancel_after_first_window():
        calls["n"] += 1
        return calls["n"] > 1

    predictor = MemberPredictor(demo_model, FOLDS_ONLY)
    with pytest.raises(CancelledError):
        predictor.analyze(_case(small_case), cancel=cancel_after_first_window)
    assert calls["n"] == 2

    # Through `iwuo analyze`: cancelled after the first window (as SIGTERM would), exit 4 and no file at all.
    import IWUOSegmentationLib.cli.analyze as analyze_command

    class CancelAfterFirstWindow(analyze_command.CancelFlag):
        def __call__(self) -> bool:
            return cancel_after_first_window()

    calls["n"] = 0
    monkeypatch.setattr(analyze_command, "CancelFlag", CancelAfterFirstWindow)
    out = tmp_path / "cancelled"
    code = main(["--progress", "none", "analyze", "--input", str(small_case / "FLAIR.nii.gz"),
                 str(small_case / "T1c.nii.gz"), "--output", str(out), "--device", "cpu", "--members", "folds",
                 "--disable-tta"])
    assert code == 4 and calls["n"] == 2
    assert list(tmp_path.iterdir()) == []  # no output folder, no partial or temporary file


def test_analysis_folder_round_trip_and_cli(tmp_path, demo_model, small_case, analysis):
    out = write_analysis(analysis, _case(small_case), tmp_path / "a", demo_model.describe(), extension=".nrrd")
    back = read_analysis(out)
    assert np.array_equal(back.label_map, analysis.label_map)
    assert np.allclose(back.uncertainty["entropy"], analysis.uncertainty["entropy"])
    assert not list(tmp_path.glob(".*partial"))
    code = main(["--progress", "none", "analyze", "--input", str(small_case / "FLAIR.nii.gz"),
                 str(small_case / "T1c.nii.gz"), "--output", str(tmp_path / "cli"), "--device", "cpu",
                 "--members", "folds", "--disable-tta"])
    assert code == 0
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["members"]["n_members"] == len(demo_model.folds) and summary["region_based"]
    assert summary["outputs"] == ["whole_tumor", "tumor_core", "enhancing_tumor"]
    assert (tmp_path / "cli" / "uncertainty_entropy.nii.gz").is_file()
    from IWUOSegmentationLib.data.analysis_identity import file_sha256, voxels_sha256

    identity = summary["identity"]  # what the analysis was made from, for the reuse check
    flair = sitk.GetArrayFromImage(sitk.ReadImage(str(small_case / "FLAIR.nii.gz")))
    assert [i["name"] for i in identity["inputs"]] == ["FLAIR", "T1c"]
    assert identity["inputs"][0]["voxels_sha256"] == voxels_sha256(flair.astype(np.float32))
    assert identity["model"]["files"]["fold_0/checkpoint_final.pth"] == \
        file_sha256(demo_model.path / "fold_0" / "checkpoint_final.pth")


def test_cli_exit_codes(tmp_path, small_case, capsys):
    assert main(["--progress", "none", "analyze", "--input", str(small_case / "FLAIR.nii.gz"), "--output",
                 str(tmp_path / "x"), "--device", "cpu"]) == 2
    assert "expects 2 input images (FLAIR, T1c)" in capsys.readouterr().err
    assert main(["--progress", "none", "analyze", "--model", str(tmp_path), "--input", "a", "b", "--output",
                 str(tmp_path / "y")]) == 3
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_gpu_out_of_memory_is_explained_or_retried_on_cpu(demo_model, small_case):
    import torch

    def fail_once(predictor):
        original = predictor.predict_preprocessed
        calls = {"n": 0}

        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return original(*args, **kwargs)

        predictor.predict_preprocessed = wrapped
        predictor.device = torch.device("cuda")  # as if it had started on a GPU
        return calls

    strict = MemberPredictor(demo_model, FOLDS_ONLY)
    fail_once(strict)
    with pytest.raises(OutOfMemoryError, match="--cpu-fallback"):
        strict.analyze(_case(small_case))
    tolerant = MemberPredictor(demo_model, replace(FOLDS_ONLY, cpu_fallback=True))
    calls = fail_once(tolerant)
    result = tolerant.analyze(_case(small_case))
    assert calls["n"] == 2 and tolerant.device.type == "cpu"
    assert any("ran out of memory: retried on the CPU" in n for n in result.members["notes"])


# -- the streamed statistics against the same statistics of all members stacked ---------------------------

def _stacked_statistics(logits: np.ndarray, region_based: bool) -> dict[str, np.ndarray]:
    """Textbook statistics of N members held at once: (N, C, ...) logits -> per-voxel maps, in float64."""
    logits = logits.astype(np.float64)
    if region_based:
        p = 1 / (1 + np.exp(-logits))
    else:
        e = np.exp(logits - logits.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
    q = np.clip(p, 1e-7, 1 - 1e-7)

    def h(x):
        x = np.clip(x, 1e-7, 1 - 1e-7)
        return -(x * np.log(x) + (1 - x) * np.log(1 - x)).sum(-4) if region_based else -(x * np.log(x)).sum(-4)

    mean = p.mean(0)
    expected_entropy = h(q).mean(0)
    if region_based:
        member_votes, consensus = p > 0.5, mean > 0.5
        disagreement = (member_votes != consensus[None]).mean(0).mean(0)
    else:
        disagreement = (p.argmax(1) != mean.argmax(0)[None]).mean(0)
    return {"mean": mean, "variance": p.var(0), "entropy": h(mean),
            "mutual_information": np.maximum(h(mean) - expected_entropy, 0), "disagreement": disagreement}


@pytest.mark.parametrize("region_based", [True, False], ids=["region model", "label model"])
def test_streamed_member_statistics_equal_the_stacked_members(region_based):
    """Welford mean/variance, entropy, mutual information and disagreement, streamed one member at a time,
    equal the statistics of all members stacked; pooled over two overlapping windows with Gaussian weights
    they equal the weighted average of the two windows' stacked statistics."""
    import torch

    from IWUOSegmentationLib.nnunet.member_statistics import PatchMembers, VolumeStatistics

    rng = np.random.default_rng(7)
    n_members, channels, patch = 16, 3, (4, 5, 6)
    windows = [(slice(None), slice(0, 4), slice(0, 5), slice(0, 6)), (slice(None), slice(2, 6), slice(0, 5), slice(0, 6))]
    volume = VolumeStatistics.zeros(channels, (6, 5, 6))
    gaussians = [torch.from_numpy(rng.uniform(0.5, 2.0, patch).astype(np.float32)) for _ in windows]
    expected = []
    for window, gaussian in zip(windows, gaussians):
        logits = rng.normal(0, 2.5, (n_members, channels, *patch)).astype(np.float32)
        streamed = PatchMembers(region_based)
        for member in logits:
            streamed.add(torch.from_numpy(member))
        stacked = _stacked_statistics(logits, region_based)
        assert streamed.n == n_members
        np.testing.assert_allclose(streamed.mean.numpy(), stacked["mean"], atol=1e-6)
        np.testing.assert_allclose((streamed.m2 / streamed.n).numpy(), stacked["variance"], atol=1e-6)
        np.testing.assert_allclose(streamed.mutual_information()[0].numpy(), stacked["mutual_information"], atol=2e-5)
        np.testing.assert_allclose(streamed.disagreement()[0].numpy(), stacked["disagreement"], atol=1e-6)
        assert stacked["disagreement"].max() > 0.3 and stacked["mutual_information"].max() > 0.1  # a real spread
        volume.add_patch(window, streamed, gaussian)
        expected.append((window, gaussian.numpy().astype(np.float64), stacked))

    maps = {k: v.numpy() for k, v in volume.finalize(region_based).items()}
    weight = np.zeros((6, 5, 6))
    pooled = {k: np.zeros((channels, 6, 5, 6)) for k in ("mean", "variance")}
    pooled.update({k: np.zeros((6, 5, 6)) for k in ("mutual_information", "disagreement")})
    for window, g, stacked in expected:
        weight[window[1:]] += g
        for k in pooled:
            pooled[k][window if pooled[k].ndim == 4 else window[1:]] += stacked[k] * g
    pooled = {k: v / weight for k, v in pooled.items()}
    np.testing.assert_allclose(maps["member_mean"], pooled["mean"], atol=1e-5)
    np.testing.assert_allclose(maps["member_variance"], pooled["variance"], atol=1e-5)
    foreground = pooled["variance"] if region_based else pooled["variance"][1:]
    np.testing.assert_allclose(maps["variance"][0], foreground.mean(0), atol=1e-5)
    mean = pooled["mean"]
    q = np.clip(mean, 1e-7, 1 - 1e-7)
    entropy = -(q * np.log(q) + (1 - q) * np.log(1 - q)).sum(0) if region_based else -(q * np.log(q)).sum(0)
    np.testing.assert_allclose(maps["entropy"][0], entropy, atol=2e-5)
    np.testing.assert_allclose(maps["mutual_information"][0], pooled["mutual_information"], atol=2e-5)
    np.testing.assert_allclose(maps["disagreement"][0], pooled["disagreement"], atol=1e-5)
