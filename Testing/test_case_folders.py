"""Channel matching by sequence synonyms (BraTS 2013-2024 names, nnU-Net indices) and clear ambiguity errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from IWUOSegmentationLib.data.case_folders import find_case_files, match_channels
from IWUOSegmentationLib.errors import BadInputError


def _folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "case"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_brats2023_names_match_all_four_sequences_and_the_reference(tmp_path):
    folder = _folder(tmp_path, [f"BraTS-GLI-00001-000-{s}.nii.gz" for s in ("t1c", "t1n", "t2f", "t2w", "seg")])
    files = find_case_files(folder, ["FLAIR", "T1c", "T1", "T2"])
    assert [f.name.split("-")[-1] for f in files.images] == ["t2f.nii.gz", "t1c.nii.gz", "t1n.nii.gz", "t2w.nii.gz"]
    assert files.reference.name == "BraTS-GLI-00001-000-seg.nii.gz"


def test_brats2021_names_t1_never_takes_t1ce(tmp_path):
    folder = _folder(tmp_path, [f"BraTS2021_00000_{s}.nii.gz" for s in ("t1ce", "flair", "t2", "t1", "seg")])
    files = find_case_files(folder, ["T1", "T1c", "T2", "FLAIR"])
    assert [f.name for f in files.images] == ["BraTS2021_00000_t1.nii.gz", "BraTS2021_00000_t1ce.nii.gz",
                                              "BraTS2021_00000_t2.nii.gz", "BraTS2021_00000_flair.nii.gz"]


@pytest.mark.parametrize("t1c_name", ["p_t1gd.nii.gz", "p_T1-post.nrrd", "p_t1ce.mha"])
def test_t1c_synonyms_and_t2_flair_is_flair(t1c_name):
    files = [Path(t1c_name), Path("p_T2-FLAIR.nii.gz"), Path("p_t2.nii.gz"), Path("p_t1n.nii.gz")]
    assert match_channels(files, ["T1", "T1c", "T2", "FLAIR"]) == [files[3], files[0], files[2], files[1]]


def test_nnunet_indices_and_model_channel_names_that_are_synonyms(tmp_path):
    files = [Path("case_0001.nii.gz"), Path("case_0000.nii.gz")]
    assert match_channels(files, ["FLAIR", "T1c"]) == [files[1], files[0]]
    # a model whose channels are named as BraTS 2023 names them finds BraTS 2021 files
    files = [Path("x_flair.nii.gz"), Path("x_t1ce.nii.gz")]
    assert match_channels(files, ["t2f", "t1c"]) == files


def test_two_candidates_for_one_channel_name_both(tmp_path):
    folder = _folder(tmp_path, ["FLAIR.nii.gz", "T1c.nii.gz", "T1c_registered_t1gd.nii.gz", "label.nii.gz"])
    with pytest.raises(BadInputError, match=r"Channel T1c is ambiguous: T1c.nii.gz, T1c_registered_t1gd.nii.gz"):
        find_case_files(folder, ["FLAIR", "T1c"])


def test_missing_channel_still_named(tmp_path):
    folder = _folder(tmp_path, ["BraTS-GLI-00001-000-t1c.nii.gz", "BraTS-GLI-00001-000-seg.nii.gz"])
    with pytest.raises(BadInputError, match="No image found for channel.s. FLAIR"):
        find_case_files(folder, ["FLAIR", "T1c"])
